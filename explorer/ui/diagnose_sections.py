"""Sections of the Diagnose tab that stand apart from the main charts: the filtered view every handler starts from,
the scope trade-offs, the comparison with a second model, and the CSV files of a view."""

from __future__ import annotations

import html

import gradio as gr

from explorer.diagnose.calibration import CalibrationData, fit_temperature, reliability
from explorer.diagnose.causes import cause_totals, caused_errors, surroundings_by_clade
from explorer.diagnose.figures import (
    plot_errors_side_by_side,
    plot_model_comparison,
    plot_reliability,
    plot_rollup_tradeoff,
    plot_scope_tradeoff,
)
from explorer.diagnose.frames import ROW, View, columns, first_value, to_pandas
from explorer.diagnose.geo_effect import compare_priors, geo_effect_by_clade, geo_view, has_geo, table_priors
from explorer.diagnose.metrics import (
    accuracy_by_clade,
    compare_models,
    confused_pairs,
    filter_view,
    rollup_tradeoff,
)
from explorer.diagnose.scope_effect import (
    has_scope,
    open_set_tradeoff,
    scope_effect,
    scope_scores,
    scope_tradeoff,
)
from explorer.diagnose.texts import NO_SCOPE, calibration_markdown, scope_markdown
from explorer.services.resources import Resources
from explorer.ui.components import refused
from explorer.ui.dashboard_state import DEFAULTS, NO_COMPARISON, DashboardFilters
from explorer.ui.fast_plot import FastPlot
from explorer.ui.temp_files import write_download

ERROR_COLUMNS = ["true_name", "pred_name", "confidence", "divergence_rank", "source", "path"]


def filtered_view(resources: Resources, filters: DashboardFilters) -> View:
    """The photos of ``filters.table`` that pass the filters, as a lazy query over the table's columnar copy: each
    chart then reads only its own columns of the rows kept (explorer.diagnose.frames)."""
    try:
        return filter_view(resources.frame(filters.table), filters.metric_filters())
    except ValueError as err:
        raise refused(str(err)) from err


def calibration_outputs(out, view: View) -> dict:
    """The reliability diagram before and after a fitted temperature, its note, and the roll-up trade-off."""
    data = CalibrationData.from_table(view)
    fit = fit_temperature(data)
    bins, ece = reliability(data)
    calibrated = reliability(data, fit.temperature) if fit.held_out_photos else None
    return {
        out.reliability_plot: plot_reliability(bins, ece, calibrated, fit.temperature),
        out.tradeoff_plot: plot_rollup_tradeoff(rollup_tradeoff(view)),
        out.calibration: calibration_markdown(fit),
    }


def build_comparison(resources: Resources) -> tuple[dict, dict]:
    """The comparison with a second table (outputs) and its control, the second table ({filter name: control})."""
    with gr.Accordion("Compare with another model", open=False):
        other = gr.Dropdown(
            [NO_COMPARISON, *resources.tables],
            value=DEFAULTS.other,
            label="Second table (same filters)",
            elem_id="dash_other",
        )
        compare_text = gr.Markdown(elem_id="dash_compare_text")
        compare_ranks_plot = FastPlot(elem_id="dash_compare_ranks")
        compare_plot = FastPlot(elem_id="dash_compare")
        disagreements = gr.Dataframe(label="Photos where the two top-1 predictions differ", max_height=260)
    outputs = dict(
        compare_plot=compare_plot,
        compare_ranks_plot=compare_ranks_plot,
        compare_text=compare_text,
        disagreements=disagreements,
    )
    return outputs, dict(other=other)


def scope_outputs(resources: Resources, out, view: View, model: str) -> dict:
    """The scope and open-set trade-offs; the out-of-scope curve only when the loaded rule is the table's kind."""
    if not has_scope(view):
        return {out.scope_plot: None, out.scope_text: NO_SCOPE}
    rule = resources.scope_rules.get(model)
    kind = str(first_value(view, "scope_kind") or "")
    outside = rule.figures.get("held_out_out_of_scope_scores") if rule is not None and rule.score == kind else None
    scores = scope_scores(view)  # read and sorted once for the three parts
    effect = scope_effect(scores, outside)
    figure = plot_scope_tradeoff(
        scope_tradeoff(scores, outside), open_set_tradeoff(scores), effect.threshold, effect.novelty_threshold
    )
    return {out.scope_plot: figure, out.scope_text: scope_markdown(effect)}


COMPARE_COLUMNS = ["true_name", "pred_name_a", "correct_1_a", "pred_name_b", "correct_1_b", "path"]


def comparison_outputs(resources: Resources, out, view, filters: DashboardFilters) -> dict:
    """The main table's view against the second table (``filters.other``), on the photos both hold and both models
    can name, per clade of the clade tables' rank."""
    name, other = filters.table, filters.other
    nothing = {out.compare_plot: None, out.compare_ranks_plot: None, out.disagreements: None}
    if not other or other not in resources.tables:
        return {**nothing, out.compare_text: ""}
    compared = compare_models(to_pandas(view), resources.tables[other], filters.list_rank)
    matched = MATCHED_BY.get(compared.matched_by, compared.matched_by)
    text = (
        f"**{compared.compared}** photos in view that both tables hold ({matched}) and both models have a class "
        f"for (left out: {compared.out_of_vocabulary} of a species one model cannot name, {compared.not_shared} not "
        f"in `{html.escape(other)}`). The filters select photos by the main table's model "
        f"(`{html.escape(name)}`): its confidence and outcome."
    )
    if not compared.compared:
        if compared.not_shared and not compared.out_of_vocabulary:  # none of these photos is in the other table
            second = resources.tables[other]
            model = html.escape(str(second["model"].iloc[0])) if len(second) else html.escape(other)
            text += (
                f" To compare the two models on these photos, evaluate `{model}` on them too: `explorer-evaluate "
                f"--model {model} --images YOUR_PHOTOS --out ...` (see the guide, Bring your own model)."
            )
        return {**nothing, out.compare_text: text}
    text += " " + comparison_counts(compared, html.escape(name), html.escape(other))
    return {
        out.compare_plot: plot_model_comparison(compared.per_clade, name, other),
        out.compare_ranks_plot: plot_errors_side_by_side(compared.by_rank, name, other),
        out.compare_text: text,
        out.disagreements: compared.disagree[COMPARE_COLUMNS],
    }


MATCHED_BY = {
    "photo_hash": "matched by their files' contents",
    "photo_id": "matched by photo id, source and path as written: a table made before content hashes",
}


def comparison_counts(compared, name: str, other: str) -> str:
    """Both models' errors in counts, what the second fixed and broke, and McNemar's test on the pairs."""
    n = compared.compared
    a, b = n - compared.errors_a, n - compared.errors_b
    return (
        f"Top-1 on them: `{name}` {a / n:.1%} ({compared.errors_a} errors), `{other}` {b / n:.1%} "
        f"({compared.errors_b} errors). `{other}` gets right **{compared.fixed}** photos that `{name}` gets wrong "
        f"and wrong **{compared.broke}** that it gets right (McNemar's exact test, p = {compared.mcnemar_p:.2g})."
    )


def _errors_with_causes(view: View):
    """Every error in view (most confident first), with its label score where the table has one and its causes."""
    only = ERROR_COLUMNS + (["label_issue_score"] if "label_issue_score" in columns(view) else [])
    return caused_errors(view, limit=None, only=only).drop(columns=[ROW])


def view_csv_files(resources: Resources, filters: DashboardFilters) -> list[str]:
    """The photos in view and each of the view's tables, as CSV files written for this request."""
    if float(filters.min_conf) > float(filters.max_conf):
        raise refused(
            f"Min confidence {filters.min_conf:g} is above the max {filters.max_conf:g}: no photo could match."
        )
    view = filtered_view(resources, filters)
    name, rank, min_photos, prior = filters.table, filters.list_rank, int(filters.min_photos), filters.geo_prior
    tables = {
        f"{name}-photos-in-view": to_pandas(view),
        f"{name}-clades-by-{rank}": accuracy_by_clade(view, rank, min_photos),
        f"{name}-confused-pairs": confused_pairs(view),
        f"{name}-errors": _errors_with_causes(view),
        f"{name}-causes": cause_totals(view),
    }
    if "off_subject_share" in columns(view):
        tables[f"{name}-surroundings-by-{rank}"] = surroundings_by_clade(view, rank, int(min_photos))
    if has_geo(view) and (not prior or prior in table_priors(view)):
        tables[f"{name}-priors-compared"] = compare_priors(view)
        stem = f"{name}-geo-{prior or table_priors(view)[0]}-{filters.geo_kind}-by-{rank}"
        tables[stem] = geo_effect_by_clade(geo_view(view, prior), rank, min_photos)
    other = filters.other
    if other and other in resources.tables:
        compared = compare_models(tables[f"{name}-photos-in-view"], resources.tables[other], rank)
        tables[f"{name}-vs-{other}-by-{rank}"] = compared.per_clade
    return [write_download(f"{stem}.csv", frame.to_csv(index=False)) for stem, frame in tables.items()]
