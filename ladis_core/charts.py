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

import html
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ladis_core.errors import InputError
from ladis_core.monitoring.results import STATUS_OK, JobResult
from ladis_core.store import layout

#: colours shared by all charts (and usable by the dashboard for matching legends)
COLORS = {
    "rate": "#1f4e9c",
    "baseline": "#6b7280",
    "threshold": "#c0392b",
    "incident": "#d62728",
    "requests": "#9ca3af",
    "selected": "#f59e0b",
    "insufficient": "#9ca3af",
    "reference": "#9ca3af",
    "inference": "#1f77b4",
    "suspect": "#d62728",
}
TEMPLATE = "plotly_white"
COMBINED_LABEL = "(combined)"


def plot_text(value: object) -> str:
    """``value`` as text safe for plotly labels and hover text (HTML-escaped)."""
    return html.escape(str(value), quote=False)


def job_time(job: JobResult) -> datetime | str:
    """When a job was scheduled, as a datetime (from ``scheduled_at``, else the job id),
    or the raw ``scheduled_at`` string when neither parses."""
    for text, parse in (
        (job.scheduled_at, datetime.fromisoformat),
        (job.job_id, layout.parse_job_id),
    ):
        try:
            return parse(text)
        except (TypeError, ValueError):
            continue
    return job.scheduled_at or job.job_id


def sort_jobs(jobs: Sequence[JobResult]) -> list[JobResult]:
    """Jobs ordered by scheduled time (unparseable times last, by job id)."""

    def key(job: JobResult) -> tuple:
        moment = job_time(job)
        if isinstance(moment, datetime):
            return (0, moment.timestamp(), job.job_id)
        return (1, 0.0, job.job_id)

    return sorted(jobs, key=key)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _empty_figure(message: str, *, height: int = 260) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=plot_text(message), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False
    )
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 20, "r": 20, "t": 30, "b": 20},
    )
    return fig


def layer_order(jobs: Sequence[JobResult]) -> list[str]:
    """Layer names in first-seen order over ``jobs`` (which follows the network order the
    monitoring job writes them in)."""
    seen: dict[str, None] = {}
    for job in jobs:
        for name in job.layers:
            seen.setdefault(name, None)
    return list(seen)


# --------------------------------------------------------------------------- timeline


def timeline_figure(
    jobs: Sequence[JobResult],
    *,
    selected_job_id: str | None = None,
    title: str | None = None,
    height: int = 380,
) -> go.Figure:
    """Detection rate of each job over time (percent, left axis) with the baseline rate,
    the alert threshold and incidents; requests per job as bars on the right axis.

    Windows that could not be tested (``status != "ok"``) appear as grey crosses at 0 with
    their reason on hover, never as a false 0 % rate. ``selected_job_id`` is highlighted.
    Points carry the job id as ``customdata[0]`` for click selection.
    """
    if not jobs:
        return _empty_figure("No monitoring jobs in this range.", height=height)
    ordered = sort_jobs(jobs)
    x = [job_time(j) for j in ordered]
    ids = [j.job_id for j in ordered]
    tested = [j.status == STATUS_OK and j.detection_rate is not None for j in ordered]

    def hover(job: JobResult) -> str:
        lines = [
            f"<b>{plot_text(job.job_id)}</b>",
            f"endpoint: {plot_text(job.endpoint)}",
            f"detection rate: {_pct(job.detection_rate)}",
            f"baseline: {_pct(job.baseline_detection_rate)}",
            f"threshold: {_pct(job.alert_threshold)}",
            f"requests: {job.requests}",
        ]
        if job.incident:
            lines.append("<b>INCIDENT</b>")
        if job.status != STATUS_OK:
            lines.append(f"not tested: {plot_text(job.reason or job.status)}")
        return "<br>".join(lines)

    hovers = [hover(j) for j in ordered]
    customdata = [[job_id] for job_id in ids]

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=x,
            y=[j.requests for j in ordered],
            name="requests",
            marker_color=COLORS["requests"],
            opacity=0.35,
            customdata=customdata,
            hovertext=hovers,
            hoverinfo="text",
        ),
        secondary_y=True,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[j.baseline_detection_rate for j in ordered],
            name="baseline rate",
            mode="lines",
            line={"color": COLORS["baseline"], "dash": "dash"},
            hoverinfo="skip",
            connectgaps=True,
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[j.alert_threshold for j in ordered],
            name="alert threshold",
            mode="lines",
            line={"color": COLORS["threshold"], "dash": "dot", "width": 1.5},
            hoverinfo="skip",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[j.detection_rate if ok else None for j, ok in zip(ordered, tested, strict=True)],
            name="detection rate",
            mode="lines+markers",
            line={"color": COLORS["rate"], "width": 2},
            marker={"size": 7},
            customdata=customdata,
            hovertext=hovers,
            hoverinfo="text",
        ),
        secondary_y=False,
    )
    incidents = [i for i, j in enumerate(ordered) if j.incident]
    if incidents:
        fig.add_trace(
            go.Scatter(
                x=[x[i] for i in incidents],
                y=[ordered[i].detection_rate for i in incidents],
                name="incident",
                mode="markers",
                marker={
                    "color": COLORS["incident"],
                    "size": 14,
                    "symbol": "diamond",
                    "line": {"color": "white", "width": 1},
                },
                customdata=[customdata[i] for i in incidents],
                hovertext=[hovers[i] for i in incidents],
                hoverinfo="text",
            ),
            secondary_y=False,
        )
    untested = [i for i, ok in enumerate(tested) if not ok]
    if untested:
        fig.add_trace(
            go.Scatter(
                x=[x[i] for i in untested],
                y=[0.0] * len(untested),
                name="not tested",
                mode="markers",
                marker={"color": COLORS["insufficient"], "size": 10, "symbol": "x"},
                customdata=[customdata[i] for i in untested],
                hovertext=[hovers[i] for i in untested],
                hoverinfo="text",
            ),
            secondary_y=False,
        )
    if selected_job_id is not None and selected_job_id in ids:
        i = ids.index(selected_job_id)
        fig.add_shape(
            type="line",
            x0=x[i],
            x1=x[i],
            y0=0,
            y1=1,
            xref="x",
            yref="paper",
            line={"color": COLORS["selected"], "width": 2},
        )
        fig.add_trace(
            go.Scatter(
                x=[x[i]],
                y=[ordered[i].detection_rate if tested[i] else 0.0],
                name="selected job",
                mode="markers",
                marker={
                    "size": 18,
                    "color": "rgba(0,0,0,0)",
                    "line": {"color": COLORS["selected"], "width": 3},
                },
                customdata=[customdata[i]],
                hovertext=[hovers[i]],
                hoverinfo="text",
            ),
            secondary_y=False,
        )
    fig.update_yaxes(title_text="detection rate (%)", range=[-4, 104], secondary_y=False)
    max_requests = max([j.requests for j in ordered] + [1])
    # requests bars use the lower part of the plot so they do not hide the rate line
    fig.update_yaxes(
        title_text="requests",
        range=[0, max_requests * 2.5],
        showgrid=False,
        tickmode="auto",
        nticks=4,
        rangemode="tozero",
        secondary_y=True,
    )
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        title_text=plot_text(title) if title else "",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 60, "t": 60 if title else 40, "b": 40},
        hovermode="closest",
        bargap=0.3,
        clickmode="event+select",
    )
    return fig


# --------------------------------------------------------------------------- layers


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
