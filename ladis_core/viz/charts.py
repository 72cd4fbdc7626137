"""Plotly figures of monitoring results: pure functions from result objects to figures.

The incident report and the dashboard draw the same charts with these functions:

- :func:`timeline_figure`: each job's detection rate over time, with the baseline rate,
  the alert threshold, incidents marked, windows that could not be tested, and the request
  count on a second axis. Every point carries its job id in ``customdata`` so a click can
  select the job.
- :func:`layer_heatmap_figure`: per-layer detection rate, layers × jobs over time.
- :func:`layer_bars_figure`: per-layer detection rates of one job, with baselines.
- :func:`pvalue_histogram_figure`: distribution of the test p-values per layer, with α.
- :func:`embedding_figure`: a 2-D embedding (e.g. t-SNE coordinates computed elsewhere)
  of reference vs inference rows.

Plotly renders text as a small HTML subset, so every string that comes from data (layer,
endpoint and class names) goes through :func:`plot_text`, which escapes it: a layer named
``<b>x</b>`` shows those characters, not bold text. Category values themselves stay raw
(so click events return real names); only their displayed labels are escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ladis_core.errors import InputError
from ladis_core.monitoring.jobs import job_time, sort_jobs
from ladis_core.monitoring.results import JobResult
from ladis_core.viz.style import (
    COLORS,
    COMBINED_LABEL,
    TEMPLATE,
    _empty_figure,
    layer_order,
    plot_text,
)


def layer_heatmap_figure(jobs: Sequence[JobResult], *, height: int | None = None) -> go.Figure:
    """Per-layer detection rate (percent, colour) with layers as rows and jobs over time as
    columns; a first row shows the combined rate. Untested cells are blank. Cells carry the
    job id in ``customdata``."""
    if not jobs:
        return _empty_figure("No monitoring jobs in this range.")
    ordered = sort_jobs(jobs)
    names = layer_order(ordered)
    if not names:
        return _empty_figure("These jobs have no per-layer results.")
    x = [job_time(j) for j in ordered]
    rows = [COMBINED_LABEL, *names]
    z = np.full((len(rows), len(ordered)), np.nan)
    for col, job in enumerate(ordered):
        if job.detection_rate is not None:
            z[0, col] = job.detection_rate
        for row, name in enumerate(names, start=1):
            layer = job.layers.get(name)
            if layer is not None and layer.detection_rate is not None:
                z[row, col] = layer.detection_rate
    row_labels = [COMBINED_LABEL] + [plot_text(n) for n in names]
    customdata = [[[job.job_id, row_labels[r]] for job in ordered] for r in range(len(rows))]
    z_list = [[None if np.isnan(v) else float(v) for v in row] for row in z]
    show_text = z.size <= 240
    fig = go.Figure(
        go.Heatmap(
            z=z_list,
            x=x,
            y=list(range(len(rows))),
            zmin=0,
            zmax=100,
            colorscale="Reds",
            colorbar={"title": {"text": "rate (%)"}},
            customdata=customdata,
            xgap=1,
            ygap=1,
            hovertemplate="layer: %{customdata[1]}<br>job: %{customdata[0]}<br>rate: %{z:.1f}%<extra></extra>",
            texttemplate="%{z:.0f}" if show_text else None,
            hoverongaps=False,
        )
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(rows))),
        ticktext=row_labels,
        autorange="reversed",
        title_text="layer",
    )
    fig.update_layout(
        template=TEMPLATE,
        height=height or max(220, 80 + 28 * len(rows)),
        margin={"l": 40, "r": 20, "t": 30, "b": 40},
    )
    return fig


def layer_bars_figure(job: JobResult, *, height: int = 340) -> go.Figure:
    """Detection rate per layer of one job (bars; red above the alert threshold), the
    per-layer baseline rate (markers), the job's combined rate, the alert threshold and the
    nominal level α. Bars carry the raw layer name in ``x`` (for click events)."""
    names = list(job.layers)
    if not names:
        return _empty_figure(f"Job {job.job_id} has no per-layer results.")
    threshold = job.alert_threshold
    rates = [job.layers[n].detection_rate for n in names]
    baselines = [job.layers[n].baseline_detection_rate for n in names]
    labels = [plot_text(n) for n in names]
    colors = [
        COLORS["incident"] if (r is not None and r > threshold) else COLORS["rate"] for r in rates
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=names,
            y=rates,
            name="detection rate",
            marker_color=colors,
            customdata=labels,
            hovertemplate="%{customdata}<br>rate: %{y:.1f}%<extra></extra>",
            text=["n/a" if r is None else f"{r:.0f}%" for r in rates],
            textposition="outside",
        )
    )
    if any(b is not None for b in baselines):
        fig.add_trace(
            go.Scatter(
                x=names,
                y=baselines,
                name="baseline rate",
                mode="markers",
                customdata=labels,
                marker={
                    "symbol": "line-ew-open",
                    "size": 28,
                    "color": COLORS["baseline"],
                    "line": {"width": 3, "color": COLORS["baseline"]},
                },
                hovertemplate="%{customdata}<br>baseline: %{y:.1f}%<extra></extra>",
            )
        )
    fig.add_hline(
        y=threshold,
        line={"color": COLORS["threshold"], "dash": "dot"},
        annotation_text=f"alert threshold {threshold:.0f}%",
        annotation_position="top left",
    )
    fig.add_hline(
        y=100 * job.settings.alpha,
        line={"color": COLORS["baseline"], "dash": "dash", "width": 1},
        annotation_text=f"α = {job.settings.alpha:g}",
        annotation_position="bottom right",
    )
    if job.detection_rate is not None:
        # a legend entry rather than an annotation: at 100 % a label would sit on the bars' own
        fig.add_trace(
            go.Scatter(
                x=[names[0], names[-1]],
                y=[job.detection_rate] * 2,
                mode="lines",
                name=f"combined ({plot_text(job.combined_method)}) {job.detection_rate:.0f}%",
                line={"color": COLORS["rate"], "width": 1},
                hovertemplate="combined: %{y:.1f}%<extra></extra>",
            )
        )
    fig.update_xaxes(
        tickmode="array", tickvals=names, ticktext=labels, tickangle=-25, title_text="layer"
    )
    fig.update_yaxes(title_text="detection rate (%)", range=[0, 112])
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        showlegend=True,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 40, "b": 80},
    )
    return fig


def pvalue_histogram_figure(
    p_values_by_layer: Mapping[str, Sequence[float] | np.ndarray],
    *,
    alpha: float,
    bins: int = 20,
    height: int = 320,
) -> go.Figure:
    """Histogram of the p-values of repeated tests, one overlaid series per layer, with a
    line at ``alpha``. ``p_values_by_layer`` maps a layer name to p-values of shape (R,).
    Under H0 p-values are uniform; a pile-up left of α is what the detection rate counts.
    The legend gives each layer's share of p < α.
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha={alpha!r} must be between 0 and 1")
    if bins < 1:
        raise InputError(f"bins={bins} must be at least 1")
    series = {
        name: np.asarray(values, dtype=np.float64).ravel()
        for name, values in p_values_by_layer.items()
        if np.size(values) > 0
    }
    if not series:
        return _empty_figure("No p-values recorded.", height=height)
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for name, values in series.items():
        finite = values[np.isfinite(values)]
        counts, _ = np.histogram(np.clip(finite, 0.0, 1.0), bins=edges)
        share = 100.0 * float(np.mean(finite < alpha)) if finite.size else float("nan")
        label = plot_text(name)
        fig.add_trace(
            go.Bar(
                x=centres,
                y=counts,
                width=1.0 / bins,
                name=f"{label} ({share:.0f}% &lt; α)",
                opacity=0.6,
                customdata=[[label]] * len(centres),
                hovertemplate="%{customdata[0]}<br>p in %{x:.3f} ± "
                + f"{0.5 / bins:.3f}"
                + "<br>count: %{y}<extra></extra>",
            )
        )
    fig.add_vline(
        x=alpha,
        line={"color": COLORS["threshold"], "dash": "dot"},
        annotation_text=f"α = {alpha:g}",
        annotation_position="top right",
    )
    fig.update_xaxes(title_text="p-value", range=[0, 1])
    fig.update_yaxes(title_text="tests")
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        barmode="overlay",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
    )
    return fig


def embedding_figure(
    reference: np.ndarray,
    inference: np.ndarray,
    *,
    suspect: np.ndarray | None = None,
    inference_labels: Sequence[str] | None = None,
    title: str | None = None,
    height: int = 420,
) -> go.Figure:
    """Scatter of a 2-D embedding (coordinates computed elsewhere, e.g. t-SNE):
    ``reference`` of shape (n, 2) in grey, ``inference`` of shape (m, 2) in blue, with rows
    where ``suspect`` (bool, shape (m,)) holds in red. ``inference_labels`` (m,) are shown on
    hover (e.g. "step 17, class 3")."""
    ref = (
        np.asarray(reference, dtype=np.float64).reshape(-1, 2)
        if np.size(reference)
        else np.zeros((0, 2))
    )
    inf = (
        np.asarray(inference, dtype=np.float64).reshape(-1, 2)
        if np.size(inference)
        else np.zeros((0, 2))
    )
    flags = (
        np.zeros(len(inf), dtype=bool)
        if suspect is None
        else np.asarray(suspect, dtype=bool).ravel()
    )
    if flags.shape != (len(inf),):
        raise InputError(f"suspect has {flags.size} values but inference has {len(inf)} rows")
    labels = (
        [plot_text(t) for t in inference_labels]
        if inference_labels is not None
        else [""] * len(inf)
    )
    if len(labels) != len(inf):
        raise InputError(
            f"inference_labels has {len(labels)} values but inference has {len(inf)} rows"
        )
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ref[:, 0],
            y=ref[:, 1],
            mode="markers",
            name="reference (natural)",
            marker={"color": COLORS["reference"], "size": 5, "opacity": 0.6},
            hoverinfo="skip",
        )
    )
    for mask, name, color in (
        (~flags, "inference", COLORS["inference"]),
        (flags, "flagged", COLORS["suspect"]),
    ):
        if mask.any():
            fig.add_trace(
                go.Scatter(
                    x=inf[mask, 0],
                    y=inf[mask, 1],
                    mode="markers",
                    name=name,
                    marker={"color": color, "size": 6 if name == "inference" else 8},
                    hovertext=[labels[i] for i in np.flatnonzero(mask)],
                    hoverinfo="text",
                )
            )
    fig.update_xaxes(showticklabels=False, title_text="")
    fig.update_yaxes(showticklabels=False, title_text="", scaleanchor="x")
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        title_text=plot_text(title) if title else "",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 20, "r": 20, "t": 60 if title else 40, "b": 20},
    )
    return fig
