"""The look shared by every chart (colours, template, empty figures), text escaping for
plotly, and the ordering helpers the charts and reports share (job times, layer order).

Plotly renders text as a small HTML subset, so every string that comes from data (layer,
endpoint and class names) goes through :func:`plot_text`, which escapes it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from ladis_core.monitoring.results import JobResult

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
    "share": "#7b3294",
}


TEMPLATE = "plotly_white"


COMBINED_LABEL = "(combined)"


def plot_text(value: object) -> str:
    """``value`` as text safe for plotly labels and hover text (HTML-escaped)."""
    return html.escape(str(value), quote=False)


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
