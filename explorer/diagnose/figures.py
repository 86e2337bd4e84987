"""The dashboard's plotly figures: computed DataFrames in, figures out (never a table, never a model).

Figures are written as plain dicts and built without plotly's property validation (``light``): validating every
property was most of the time a filter change spent on figures, and these dicts are fixed and tested."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import diverging, make_colorscale

from explorer.diagnose.metrics import clade_tree
from explorer.diagnose.schema import ROLLUP_RANKS

RED_TO_GREEN = make_colorscale(diverging.RdYlGn)  # spelt out: unvalidated figures do not expand Python's names


MAX_WEDGES = 2_000  # the sunburst drops its deepest rings beyond this many wedges


def light(data: list[dict], **layout) -> go.Figure:
    """A figure from trace dicts (each with its ``type``) and layout properties, without plotly's validation."""
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def axis(title: str | None = None, **more) -> dict:
    return {**({"title": {"text": title}} if title else {}), **more}


def plot_errors_by_rank(counts: pd.DataFrame):
    errors = counts[counts["rank"] != "correct"]
    bars = {
        "type": "bar",
        "x": errors["rank"].tolist(),
        "y": errors["share_of_photos"].to_numpy(),
        "customdata": errors[["photos", "share_of_errors"]].to_numpy(),
        "hovertemplate": "%{x}: %{customdata[0]} photos<br>%{y:.1%} of photos, "
        "%{customdata[1]:.1%} of errors<extra></extra>",
    }
    return light(
        [bars],
        title={"text": "Where the top-1 prediction leaves the truth"},
        xaxis=axis("first rank that differs"),
        yaxis=axis("share of photos", tickformat=".0%"),
        height=360,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
    )


def plot_clade_sunburst(table: pd.DataFrame, ranks=("class", "order", "family", "genus"), limit: int = MAX_WEDGES):
    """Drill-down: sized by photos, coloured by top-1 accuracy (click a wedge to zoom in). Its deepest rings are
    left out while it would have more than ``limit`` wedges (a 10,000-species table: 6,300 wedges, ~0.9 MB a
    redraw), and its subtitle says which: filtering to a clade brings them back."""
    tree = clade_tree(table, ranks)
    if tree.empty:
        tree = pd.DataFrame({"id": [], "label": [], "parent": [], "photos": [], "accuracy": []})
    depth = tree["id"].astype(str).str.count("/")
    kept = len(ranks)
    while kept > 1 and int((depth < kept).sum()) > limit:
        kept -= 1
    title = {"text": f"Accuracy per clade ({' → '.join(ranks[:kept])})"}
    if kept < len(ranks):
        counts = ", ".join(f"{int((depth == d).sum()):,} {ranks[d]} wedges" for d in range(kept, len(ranks)))
        title["subtitle"] = {"text": f"Too many to draw, so not drawn: {counts}. Choose a clade to see them."}
        tree = tree[depth < kept]
    wedges = {
        "type": "sunburst",
        "ids": tree["id"].tolist(),
        "labels": tree["label"].tolist(),
        "parents": tree["parent"].tolist(),
        "values": tree["photos"].to_numpy(),
        "branchvalues": "total",
        "maxdepth": 2,  # two rings at a time (click a wedge to go deeper): far fewer labels to lay out
        "marker": {
            "colors": tree["accuracy"].to_numpy(),
            "colorscale": RED_TO_GREEN,
            "cmin": 0,
            "cmax": 1,
            "colorbar": {"title": {"text": "top-1"}},
        },
        "hovertemplate": "%{label}: %{value} photos, top-1 %{color:.0%}<extra></extra>",
    }
    return light(
        [wedges],
        title=title,
        height=520,
        margin={"t": 70 if "subtitle" in title else 50, "b": 10, "l": 10, "r": 10},
    )


def plot_reliability(bins: pd.DataFrame, ece: float, calibrated: pd.DataFrame | None = None, temperature: float = 1.0):
    line = {"type": "scatter", "mode": "lines+markers"}
    data = [
        {"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "line": {"dash": "dot", "color": "grey"}}
        | {"name": "perfect"},
        line
        | {
            "x": bins["confidence"].to_numpy(),
            "y": bins["accuracy"].to_numpy(),
            "name": f"as trained (ECE {ece:.3f}, all photos in view)",
            "customdata": bins["photos"].to_numpy(),
            "hovertemplate": "confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} photos)",
        },
    ]
    if calibrated is not None:
        data.append(
            line
            | {
                "x": calibrated[0]["confidence"].to_numpy(),
                "y": calibrated[0]["accuracy"].to_numpy(),
                "name": f"temperature {temperature:.2f} (ECE {calibrated[1]:.3f}, all photos in view)",
            }
        )
    return light(
        data,
        title={"text": "Calibration: reliability diagram"},
        xaxis=axis("top-1 confidence", range=[0, 1]),
        yaxis=axis("top-1 accuracy", range=[0, 1]),
        height=380,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        legend={"x": 0.02, "y": 0.98},
    )


def plot_rollup_tradeoff(tradeoff: pd.DataFrame):
    x = tradeoff["threshold"].to_numpy()
    bar = lambda column, name, **more: {"type": "bar", "x": x, "y": tradeoff[column].to_numpy(), "name": name, **more}  # noqa: E731
    data = [bar(f"at_{rank}", f"answered at {rank}") for rank in ["species", *ROLLUP_RANKS]]
    data.append(bar("abstained", "abstained", marker={"color": "lightgrey"}))
    data.append(
        {
            "type": "scatter",
            "x": x,
            "y": tradeoff["right_when_answered"].to_numpy(),
            "name": "right when answered",
            "mode": "lines+markers",
            "line": {"color": "black"},
        }
    )
    return light(
        data,
        barmode="stack",
        title={"text": "'Not sure' roll-up: threshold vs rank of the answer and accuracy"},
        xaxis=axis("threshold (summed probability)"),
        yaxis=axis(tickformat=".0%"),
        height=400,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
    )


def plot_model_comparison(per_clade: pd.DataFrame, name_a: str, name_b: str, top: int = 25):
    shown = pd.concat([per_clade.head(top // 2), per_clade.tail(top - top // 2)]).drop_duplicates("clade")
    fig = go.Figure(
        go.Bar(
            x=shown["difference"],
            y=shown["clade"],
            orientation="h",
            customdata=shown["photos"],
            hovertemplate="%{y}: %{x:+.1%} (%{customdata} photos)<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Top-1 accuracy per clade: {name_b} minus {name_a} (shared photos)",
        xaxis_tickformat="+.0%",
        height=max(300, 18 * len(shown) + 80),
        margin={"t": 50, "b": 40, "l": 160, "r": 10},
    )
    return fig


def plot_scope_tradeoff(scope: pd.DataFrame, open_set: pd.DataFrame, threshold: float, novelty_threshold: float):
    """Left: in-scope photos kept vs out-of-scope accepted as the scope threshold moves; right: known species
    kept vs unknown species flagged as the open-set threshold moves. Dotted lines: the rule's thresholds."""
    traces = [
        ("x", scope, "in_scope_kept", "model's own photos kept", "#2a7"),
        ("x", scope, "out_of_scope_accepted", "out-of-scope photos accepted", "#c33"),
        ("x2", open_set, "known_kept", "known species kept", "#27a"),
        ("x2", open_set, "unknown_flagged", "unknown species flagged", "#e80"),
    ]
    data = [
        {
            "type": "scatter",
            "x": frame["threshold"].to_numpy(),
            "y": frame[column].to_numpy(),
            "xaxis": side,
            "yaxis": "y" if side == "x" else "y2",
            "name": name,
            "mode": "lines",
            "line": {"color": colour, "shape": "hv"},  # shares change in steps, at the photos' scores
            "hovertemplate": f"threshold %{{x:.2f}}: %{{y:.1%}} {name}<extra></extra>",
        }
        for side, frame, column, name, colour in traces
        if frame[column].notna().any()
    ]
    rule = {"type": "line", "yref": "paper", "y0": 0, "y1": 1, "line": {"dash": "dot", "color": "grey"}}
    shapes = [rule | {"xref": side, "x0": v, "x1": v} for side, v in (("x", threshold), ("x2", novelty_threshold))]
    title = {"xref": "paper", "yref": "paper", "y": 1.0, "yanchor": "bottom", "showarrow": False, "font": {"size": 16}}
    titles = [
        title | {"x": 0.22, "text": "Is it in scope?"},
        title | {"x": 0.78, "text": "Does the model know the species?"},
    ]
    return light(
        data,
        xaxis=axis("scope score threshold", domain=[0, 0.44], anchor="y"),
        xaxis2=axis("largest-logit threshold", domain=[0.56, 1], anchor="y2"),
        yaxis=axis(tickformat=".0%", range=[0, 1.02], anchor="x"),
        yaxis2=axis(tickformat=".0%", range=[0, 1.02], anchor="x2"),
        shapes=[shape for shape in shapes if shape["x0"] == shape["x0"]],  # not NaN
        annotations=titles,
        height=380,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        legend={"orientation": "h", "y": -0.25},
    )


def plot_embedding_map(points: pd.DataFrame, rank: str):
    """The photos on their table's 2-D UMAP map, a trace per clade (``other`` last, in grey); a cross marks a
    wrong top-1. customdata holds the photo's position in ``points`` (the page's click handler reads it). Built
    without plotly's validation, numbers as typed arrays: 12,000 points take ~0.03 s and ~1.3 MB of JSON."""
    clades = [c for c in dict.fromkeys(points["clade"]) if c != "other"] + ["other"]
    traces = []
    for clade in clades:
        part = points[points["clade"] == clade]
        if part.empty:
            continue
        marker = {"size": 6, "symbol": np.where(part["wrong"].to_numpy(bool), 4, 0).astype(np.int8), "opacity": 0.8}
        traces.append(
            {
                "type": "scattergl",
                "x": part["x"].to_numpy(np.float32),
                "y": part["y"].to_numpy(np.float32),
                "mode": "markers",
                "name": clade,
                "customdata": part.index.to_numpy(),
                "hovertext": part["hover"].to_numpy(object),
                "hovertemplate": "%{hovertext}<extra></extra>",
                "marker": marker | ({"color": "#c0c0c0"} if clade == "other" else {}),  # 4: x, 0: circle
            }
        )
    return light(
        traces,
        title={"text": f"Embedding map (UMAP) by true {rank}; × = wrong"},
        height=560,
        xaxis={"visible": False},
        yaxis={"visible": False},
        legend={"title": {"text": rank}, "itemsizing": "constant", "orientation": "h", "y": -0.02, "yanchor": "top"},
        margin={"t": 40, "b": 10, "l": 10, "r": 10},
        clickmode="event",
    )


def plot_errors_side_by_side(by_rank: pd.DataFrame, name_a: str, name_b: str):
    """Grouped bars: each model's errors by the first rank where its top-1 leaves the truth (same photos)."""
    fig = go.Figure()
    for side, name in (("a", name_a), ("b", name_b)):
        fig.add_trace(
            go.Bar(
                x=by_rank["rank"],
                y=by_rank[f"share_{side}"],
                name=name,
                customdata=by_rank[f"errors_{side}"],
                hovertemplate=f"{name}<br>%{{x}}: %{{customdata}} errors, %{{y:.1%}} of its errors<extra></extra>",
            )
        )
    fig.update_layout(
        title="Where each model's errors leave the truth (shared photos)",
        barmode="group",
        yaxis_tickformat=".0%",
        xaxis_title="first rank that differs",
        yaxis_title="share of the model's errors",
        height=360,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def plot_causes_by_clade(counts: pd.DataFrame, rank: str):
    """One horizontal bar per clade (``causes_by_clade``), a segment per cause (a photo with two causes is counted
    in both, so a bar may be longer than the clade's errors, which the hover gives)."""
    causes = [c for c in counts.columns if c not in (rank, "errors")]
    clades = counts[rank].fillna("(unknown)").astype(str).tolist()[::-1]
    errors = counts["errors"].to_numpy()[::-1]
    bars = [
        {
            "type": "bar",
            "orientation": "h",
            "name": cause,
            "y": clades,
            "x": counts[cause].to_numpy()[::-1],
            "customdata": errors,
            "hovertemplate": f"%{{y}}: %{{x}} of %{{customdata}} errors: {cause}<extra></extra>",
        }
        for cause in causes
    ]
    return light(
        bars,
        barmode="stack",
        title={"text": f"Why the errors happened, per {rank}"},
        xaxis=axis("errors per cause"),
        yaxis=axis(None, automargin=True),
        legend={"orientation": "h", "y": -0.2},
        height=max(320, 60 + 26 * len(clades)),
        margin={"t": 50, "b": 80, "l": 10, "r": 10},
    )
