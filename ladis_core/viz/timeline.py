"""The monitoring timeline: each job's detection rate over time, with the baseline rate,
the alert threshold, incidents marked (decided by the window test), the estimated share of
crafted requests with its interval, windows that could not be tested, and the request
count on a second axis. Every point carries its job id in ``customdata`` so a click can
select the job.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ladis_core.monitoring.jobs import job_time, sort_jobs
from ladis_core.monitoring.results import STATUS_OK, JobResult
from ladis_core.viz.style import (
    COLORS,
    TEMPLATE,
    _empty_figure,
    _pct,
    plot_text,
)


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
            *_window_lines(job),
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
    shared = [i for i, j in enumerate(ordered) if j.window_test is not None]
    if shared:
        shares = [ordered[i].window_test.share for i in shared]  # type: ignore[union-attr]
        fig.add_trace(
            go.Scatter(
                x=[x[i] for i in shared],
                y=[100 * s.estimate for s in shares],
                name="crafted share (95 % interval)",
                mode="markers",
                marker={"color": COLORS["share"], "size": 6, "symbol": "square"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [100 * (s.high - s.estimate) for s in shares],
                    "arrayminus": [100 * (s.estimate - s.low) for s in shares],
                    "color": COLORS["share"],
                    "thickness": 1,
                    "width": 3,
                },
                customdata=[customdata[i] for i in shared],
                hovertext=[hovers[i] for i in shared],
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
    fig.update_yaxes(
        title_text="detection rate, crafted share (%)", range=[-4, 104], secondary_y=False
    )
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


def _window_lines(job: JobResult) -> list[str]:
    """Hover lines of the window test, when the job has one."""
    test = job.window_test
    if test is None:
        return []
    return [
        f"window test p: {test.p_value:.3g} ({plot_text(job.incident_rule.describe())})",
        f"crafted share: {100 * test.share.low:.0f}–{100 * test.share.high:.0f}% "
        f"(estimate {100 * test.share.estimate:.0f}%)",
    ]
