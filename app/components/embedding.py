"""The layer explorer's t-SNE panels, the thumbnails of selected points and the hover
thumbnails (a Streamlit v2 component: plotly's hover labels cannot hold images).
"""

from __future__ import annotations

import functools
import html
from pathlib import Path

import streamlit as st

from app import data
from app.components.format import class_label
from app.components.images import png
from app.text import literal
from ladis_core.monitoring.results import JobResult

ASSETS = Path(__file__).resolve().parents[2] / "assets"


#: a qualitative palette for up to 10 classes (Tableau 10), reused modulo its length
CLASS_PALETTE = (
    "#4E79A7",
    "#F28E2B",
    "#E15759",
    "#76B7B2",
    "#59A14F",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
    "#BAB0AC",
)


def embedding_panels(view, job: JobResult, *, colour_by: str, classes, suspect_steps: set[int]):
    """Reference and inference points of one joint t-SNE in two panels sharing axes.

    Every point carries ``customdata = [group, step, row, class label]`` (``row`` indexes
    the group's trial rows) so a selection can be mapped back to inputs.
    """
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ladis_core.viz import COLORS, TEMPLATE, plot_text

    fig = make_subplots(
        rows=1,
        cols=2,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.03,
        subplot_titles=(
            "Reference (natural validation data)",
            f"Inference (job {plot_text(job.job_id)})",
        ),
    )
    wanted = set(classes or [])
    legend_seen: set[str] = set()
    for col, group in enumerate(("reference", "inference"), start=1):
        coords, rows = view.embedding.of_group(group)
        steps = np.asarray(view.steps[group])[rows]
        cls = np.asarray(view.classes[group])[rows]
        keep = np.ones(len(rows), dtype=bool) if not wanted else np.isin(cls, list(wanted))
        if colour_by == "predicted class":
            series = [
                (
                    f"class {class_label(job, int(c))}",
                    keep & (cls == c),
                    CLASS_PALETTE[int(c) % len(CLASS_PALETTE)],
                )
                for c in np.unique(cls)
            ]
        elif group == "reference":
            series = [("natural (reference)", keep, COLORS["reference"])]
        else:
            flagged = np.isin(steps, list(suspect_steps))
            series = [
                ("inference", keep & ~flagged, COLORS["inference"]),
                ("suspect (input p ≤ α)", keep & flagged, COLORS["suspect"]),
            ]
        for name, mask, colour in series:
            if not mask.any():
                continue
            labels = [class_label(job, int(c)) for c in cls[mask]]
            fig.add_trace(
                go.Scatter(
                    x=coords[mask, 0],
                    y=coords[mask, 1],
                    mode="markers",
                    name=plot_text(name),
                    legendgroup=name,
                    showlegend=name not in legend_seen,
                    marker={
                        "color": colour,
                        "size": 7 if name.startswith("suspect") else 5,
                        "opacity": 0.85,
                        "line": {"width": 0},
                    },
                    customdata=[
                        [group, int(s), int(r), plot_text(lbl)]
                        for s, r, lbl in zip(steps[mask], rows[mask], labels, strict=True)
                    ],
                    hovertemplate=f"{group}<br>step %{{customdata[1]}}<br>"
                    "predicted class %{customdata[3]}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            legend_seen.add(name)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(
        template=TEMPLATE,
        height=440,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": -0.12, "x": 0},
        dragmode="lasso",
        clickmode="event+select",
    )
    return fig


def selected_thumbnails(world_uri: str, job: JobResult, view, event, *, limit: int = 12) -> None:
    """Thumbnails of the points selected in an :func:`embedding_panels` chart."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    picked = [p["customdata"] for p in points if p.get("customdata")]
    if not picked:
        st.caption("Click, box- or lasso-select points to see their inputs here.")
        return
    loaded = {}
    shown = picked[:limit]
    st.caption(
        f"{len(picked)} point{'s' if len(picked) != 1 else ''} selected"
        + (f"; the first {limit} are shown." if len(picked) > limit else ".")
    )
    columns = st.columns(min(6, len(shown)))
    for i, (group, step, row, label) in enumerate(shown):
        if group not in loaded:
            loaded[group] = data.group_inputs(job, group)
        inputs = loaded[group]
        column = columns[i % len(columns)]
        if inputs is None or row >= len(inputs):
            column.caption(f"{group} step {step}: no input recorded")
            continue
        where = "reference step" if group == "reference" else "step"
        # the label travelled in the chart's customdata, escaped for plotly
        caption = f"{where} {step} · {literal(html.unescape(str(label)))}"
        column.image(png(inputs[row]), caption=caption, width=96)


@functools.cache
def _hover_thumbnails_component():
    # registered once per process: registering a name twice makes Streamlit warn
    return st.components.v2.component(
        "ladis_hover_thumbnails",
        js=(ASSETS / "hover_thumbnails.js").read_text(encoding="utf-8"),
    )


def hover_thumbnails(view, *, key: str) -> None:
    """While the pointer is over a point of the chart drawn just before, show that point's
    input in a floating card (plotly's hover labels cannot hold images)."""
    if not view.thumbnails:
        return
    payload = {
        group: {str(row): uri for row, uri in rows.items()}
        for group, rows in view.thumbnails.items()
    }
    _hover_thumbnails_component()(data={"thumbnails": payload}, key=key)
