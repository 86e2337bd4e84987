"""The dashboard's plotly figures: computed DataFrames in, figures out (never a table, never a model)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from explorer.diagnose.metrics import clade_tree
from explorer.diagnose.schema import ROLLUP_RANKS


def plot_errors_by_rank(counts: pd.DataFrame):
    errors = counts[counts["rank"] != "correct"]
    fig = go.Figure(
        go.Bar(
            x=errors["rank"],
            y=errors["share_of_photos"],
            customdata=errors[["photos", "share_of_errors"]],
            hovertemplate="%{x}: %{customdata[0]} photos<br>%{y:.1%} of photos, "
            "%{customdata[1]:.1%} of errors<extra></extra>",
        )
    )
    fig.update_layout(
        title="Where the top-1 prediction leaves the truth",
        yaxis_tickformat=".0%",
        xaxis_title="first rank that differs",
        yaxis_title="share of photos",
        height=360,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
    )
    return fig


def plot_clade_sunburst(table: pd.DataFrame, ranks=("class", "order", "family", "genus")):
    """Drill-down: sized by photos, coloured by top-1 accuracy (click a wedge to zoom in)."""
    tree = clade_tree(table, ranks)
    if tree.empty:
        tree = pd.DataFrame({"id": [], "label": [], "parent": [], "photos": [], "accuracy": []})
    fig = go.Figure(
        go.Sunburst(
            ids=tree["id"],
            labels=tree["label"],
            parents=tree["parent"],
            values=tree["photos"],
            branchvalues="total",
            marker={
                "colors": tree["accuracy"],
                "colorscale": "RdYlGn",
                "cmin": 0,
                "cmax": 1,
                "colorbar": {"title": "top-1"},
            },
            hovertemplate="%{label}: %{value} photos, top-1 %{color:.0%}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Accuracy per clade (class → order → family → genus)",
        height=520,
        margin={"t": 50, "b": 10, "l": 10, "r": 10},
    )
    return fig


def plot_reliability(bins: pd.DataFrame, ece: float, calibrated: pd.DataFrame | None = None, temperature: float = 1.0):
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="perfect"))
    fig.add_trace(
        go.Scatter(
            x=bins["confidence"],
            y=bins["accuracy"],
            mode="lines+markers",
            name=f"as trained (ECE {ece:.3f}, all photos in view)",
            customdata=bins["photos"],
            hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} photos)",
        )
    )
    if calibrated is not None:
        fig.add_trace(
            go.Scatter(
                x=calibrated[0]["confidence"],
                y=calibrated[0]["accuracy"],
                mode="lines+markers",
                name=f"temperature {temperature:.2f} (ECE {calibrated[1]:.3f}, all photos in view)",
            )
        )
    fig.update_layout(
        title="Calibration: reliability diagram",
        xaxis_title="top-1 confidence",
        yaxis_title="top-1 accuracy",
        height=380,
        xaxis_range=[0, 1],
        yaxis_range=[0, 1],
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        legend={"x": 0.02, "y": 0.98},
    )
    return fig


def plot_rollup_tradeoff(tradeoff: pd.DataFrame):
    fig = go.Figure()
    for rank in ["species", *ROLLUP_RANKS]:
        fig.add_trace(go.Bar(x=tradeoff["threshold"], y=tradeoff[f"at_{rank}"], name=f"answered at {rank}"))
    fig.add_trace(go.Bar(x=tradeoff["threshold"], y=tradeoff["abstained"], name="abstained", marker_color="lightgrey"))
    fig.add_trace(
        go.Scatter(
            x=tradeoff["threshold"],
            y=tradeoff["right_when_answered"],
            name="right when answered",
            mode="lines+markers",
            line={"color": "black"},
        )
    )
    fig.update_layout(
        barmode="stack",
        title="'Not sure' roll-up: threshold vs rank of the answer and accuracy",
        xaxis_title="threshold (summed probability)",
        yaxis_tickformat=".0%",
        height=400,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
    )
    return fig


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
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Is it in scope?", "Does the model know the species?"), horizontal_spacing=0.12
    )
    traces = [
        (1, scope, "in_scope_kept", "model's own photos kept", "#2a7"),
        (1, scope, "out_of_scope_accepted", "out-of-scope photos accepted", "#c33"),
        (2, open_set, "known_kept", "known species kept", "#27a"),
        (2, open_set, "unknown_flagged", "unknown species flagged", "#e80"),
    ]
    for col, frame, column, name, colour in traces:
        if frame[column].notna().any():
            fig.add_trace(
                go.Scatter(
                    x=frame["threshold"],
                    y=frame[column],
                    name=name,
                    mode="lines",
                    line={"color": colour, "shape": "hv"},  # shares change in steps, at the photos' scores
                    hovertemplate=f"threshold %{{x:.2f}}: %{{y:.1%}} {name}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    for col, value in ((1, threshold), (2, novelty_threshold)):
        if value == value:  # not NaN
            fig.add_vline(x=value, line_dash="dot", line_color="grey", row=1, col=col)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_xaxes(title_text="scope score threshold", row=1, col=1)
    fig.update_xaxes(title_text="largest-logit threshold", row=1, col=2)
    fig.update_layout(height=380, margin={"t": 50, "b": 40, "l": 50, "r": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


def plot_embedding_map(points: pd.DataFrame, rank: str):
    """The photos on their table's 2-D UMAP map, a trace per clade (``other`` last, in grey); a cross marks a
    wrong top-1. customdata holds the photo's position in ``points`` (the page's click handler reads it)."""
    fig = go.Figure()
    clades = [c for c in dict.fromkeys(points["clade"]) if c != "other"] + ["other"]
    for clade in clades:
        part = points[points["clade"] == clade]
        if part.empty:
            continue
        fig.add_trace(
            go.Scattergl(
                x=part["x"],
                y=part["y"],
                mode="markers",
                name=clade,
                customdata=part.index.to_numpy(),
                hovertext=part["hover"],
                hovertemplate="%{hovertext}<extra></extra>",
                marker={
                    "size": 6,
                    "symbol": ["x" if w else "circle" for w in part["wrong"]],
                    "color": "#c0c0c0" if clade == "other" else None,
                    "opacity": 0.8,
                },
            )
        )
    fig.update_layout(
        title=f"Embedding map (UMAP) by true {rank}; × = wrong",
        height=560,
        xaxis={"visible": False},
        yaxis={"visible": False},
        legend={"title": rank, "itemsizing": "constant", "orientation": "h", "y": -0.02, "yanchor": "top"},
        margin={"t": 40, "b": 10, "l": 10, "r": 10},
        clickmode="event",
    )
    return fig


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
