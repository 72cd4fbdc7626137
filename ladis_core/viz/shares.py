"""Where the crafted requests are: the estimated share per predicted class of one job.

A bar per predicted class of the window: the estimated share of its requests that look
crafted, with the 95 % interval as an error bar and the class's window and reference rows
on hover. Classes the reference lacks (not tested) are marked on the axis.
"""

from __future__ import annotations

import plotly.graph_objects as go

from ladis_core.monitoring.results import JobResult
from ladis_core.viz.style import COLORS, TEMPLATE, _empty_figure, plot_text


def class_label(job: JobResult, predicted_class: int) -> str:
    name = job.class_names.get(str(predicted_class))
    return (
        f"{name} ({predicted_class})"
        if name and name != str(predicted_class)
        else str(predicted_class)
    )


def class_share_figure(job: JobResult, *, height: int = 300) -> go.Figure:
    """Estimated crafted share (percent) per predicted class of ``job``'s window."""
    test = job.window_test
    if test is None or not test.classes:
        return _empty_figure("This job has no per-class view (no class-conditional window test).")
    classes = sorted(test.classes, key=lambda c: c.predicted_class)
    labels = [
        plot_text(class_label(job, c.predicted_class)) + ("" if c.share else " (not tested)")
        for c in classes
    ]
    estimate = [0.0 if c.share is None else 100 * c.share.estimate for c in classes]
    hover = [
        f"<b>class {plot_text(class_label(job, c.predicted_class))}</b><br>"
        f"window rows: {c.window_rows}<br>reference rows: {c.reference_rows}<br>"
        + (
            "not tested: the reference has no row of this class"
            if c.share is None
            else f"crafted share: {100 * c.share.low:.0f}–{100 * c.share.high:.0f}% "
            f"(estimate {100 * c.share.estimate:.0f}%)"
        )
        for c in classes
    ]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=estimate,
            marker_color=COLORS["share"],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [
                    0 if c.share is None else 100 * (c.share.high - c.share.estimate)
                    for c in classes
                ],
                "arrayminus": [
                    0 if c.share is None else 100 * (c.share.estimate - c.share.low)
                    for c in classes
                ],
            },
            hovertext=hover,
            hoverinfo="text",
            name="crafted share",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        xaxis={"title": {"text": "predicted class"}, "type": "category"},
        yaxis={"title": {"text": "requests that look crafted (%)"}, "range": [0, 100]},
        margin={"l": 60, "r": 20, "t": 30, "b": 60},
        showlegend=False,
    )
    return fig
