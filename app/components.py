"""Reusable pieces of the dashboard: formatting, messages, KPI rows, job context.

Pages compose these so every page shows numbers, empty states and the selected job the
same way. Nothing here reads storage except through :mod:`app.data`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from app import data, state
from ladis_core.monitoring.results import STATUS_OK, JobResult
from ladis_core.viz import job_time

ASSETS = Path(__file__).resolve().parent.parent / "assets"

#: colours used consistently across pages (colour-blind safe Okabe–Ito hues)
COLOURS = {
    "detection": "#0072B2",
    "baseline": "#7F7F7F",
    "threshold": "#D55E00",
    "incident": "#D55E00",
    "requests": "#B7C4CF",
    "natural": "#56B4E9",
    "suspect": "#D55E00",
    "inference": "#009E73",
    "selected": "#CC79A7",
}


# --------------------------------------------------------------------------- formatting


def fmt_rate(value: float | None) -> str:
    """A 0–100 rate as ``"84 %"`` (``"—"`` when the window could not be tested)."""
    return "—" if value is None else f"{value:.0f} %"


def fmt_p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def fmt_time(iso: str) -> str:
    """``2026-11-23T17:00:00+00:00`` → ``23 Nov 2026, 17:00 UTC`` (unchanged if unparsable)."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return str(iso)
    return moment.strftime("%d %b %Y, %H:%M UTC")


def class_label(job: JobResult, cls: int | None) -> str:
    if cls is None:
        return "—"
    name = job.class_names.get(str(cls))
    return f"{name} ({cls})" if name and name != str(cls) else str(cls)


def verdict_label(verdict: object | None) -> str:
    if verdict is None:
        return ""
    return {"confirmed": "confirmed", "dismissed": "dismissed", "needs-review": "needs review"}.get(
        getattr(verdict, "verdict", ""), str(getattr(verdict, "verdict", ""))
    )


def job_status(job: JobResult) -> str:
    if job.status != STATUS_OK:
        return "Not tested"
    return "Incident" if job.incident else "Normal"


# --------------------------------------------------------------------------- job lists


def _naive_utc(moment) -> pd.Timestamp | None:
    """Timestamps are shown in UTC (the column says so) without a time zone attached."""
    try:
        stamp = pd.Timestamp(moment)
    except (TypeError, ValueError):
        return None
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


#: how far back the page looks, counted from the latest job (demo data is historical)
HISTORY_RANGES = {
    "24 hours": timedelta(hours=24),
    "7 days": timedelta(days=7),
    "30 days": timedelta(days=30),
    "All": None,
}


def in_range(jobs, span: timedelta | None):
    """The jobs scheduled within ``span`` of the latest one (all when ``span`` is None)."""
    if span is None:
        return list(jobs)
    times = [job_time(j) for j in jobs]
    known = [t for t in times if isinstance(t, datetime)]
    if not known:
        return list(jobs)
    start = max(known) - span
    return [
        j for j, t in zip(jobs, times, strict=True) if not isinstance(t, datetime) or t >= start
    ]


def job_table(jobs, verdicts) -> pd.DataFrame:
    """One row per job, newest first; rates in percent."""
    rows = []
    for job in reversed(jobs):
        rows.append(
            {
                "Job": job.job_id,
                "Scheduled": _naive_utc(job_time(job)),
                "Status": job_status(job),
                "Detection rate": job.detection_rate,
                "Baseline": job.baseline_detection_rate,
                "Threshold": job.alert_threshold,
                "Requests": job.requests,
                "Verdict": verdict_label(verdicts.get(job.job_id)),
                "Source": job.source,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- messages


def no_data(world_uri: str, *, detail: str = "") -> None:
    """The friendly page shown when a world has no monitoring data yet."""
    st.info(
        f"**No monitoring data found in `{world_uri}`.**"
        + (f" {detail}" if detail else "")
        + "\n\n"
        "What to do:\n"
        "- Build the demo world (a local S3 server, a trained model, a day of traffic and "
        "hourly jobs): run `make demo` in the project folder, then press **Refresh**.\n"
        "- Or point the **Data source** in the sidebar at the `s3://bucket/prefix/` your "
        "monitoring job writes to (`LADIS_S3_URI`).",
        icon=":material/inbox:",
    )


def empty_state(message: str, *, icon: str = ":material/info:") -> None:
    st.info(message, icon=icon)


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    help: str | None = None
    delta: str | None = None
    delta_color: str = "normal"


def kpi_row(items: Sequence[Kpi]) -> None:
    """A row of ``st.metric`` tiles with borders."""
    columns = st.columns(len(items))
    for column, item in zip(columns, items, strict=True):
        column.metric(
            item.label,
            item.value,
            delta=item.delta,
            delta_color=item.delta_color,  # type: ignore[arg-type]
            help=item.help,
            border=True,
        )


def job_kpis(job: JobResult) -> None:
    """The headline numbers of one job."""
    delta = None
    if job.detection_rate is not None and job.baseline_detection_rate is not None:
        delta = f"{job.detection_rate - job.baseline_detection_rate:+.0f} pts"
    kpi_row(
        [
            Kpi(
                "Detection rate",
                fmt_rate(job.detection_rate),
                "Share of the R two-sample tests with p < α, all layers combined.",
                delta,
                "inverse",
            ),
            Kpi(
                "Baseline rate",
                fmt_rate(job.baseline_detection_rate),
                "The same protocol on two halves of the natural data: the false-positive rate.",
            ),
            Kpi("Alert threshold", fmt_rate(job.alert_threshold), job.incident_rule.describe()),
            Kpi("Requests", f"{job.requests:,}", "Inference requests in the job's window."),
            Kpi(
                "Status",
                job_status(job),
                job.reason
                or (
                    "Detection rate above the alert threshold."
                    if job.incident
                    else "Below the alert threshold."
                ),
            ),
        ]
    )


# --------------------------------------------------------------------------- job context


def default_job(jobs: Sequence[JobResult]) -> JobResult:
    """The job a page opens on when none is selected: the latest incident, else the
    latest job."""
    incidents = [j for j in jobs if j.incident]
    return incidents[-1] if incidents else jobs[-1]


def current_job(world_uri: str, endpoint: str | None) -> JobResult | None:
    """The selected job of the current endpoint, or the default one, with a caption
    saying which; renders the no-data message and returns ``None`` when there is none."""
    if not endpoint:
        no_data(world_uri)
        return None
    all_jobs = data.jobs(world_uri, endpoint)
    if not all_jobs:
        no_data(world_uri, detail=f"Endpoint `{endpoint}` has no monitoring jobs yet.")
        return None
    chosen_id = state.selected_job(world_uri, endpoint)
    chosen = next((j for j in all_jobs if j.job_id == chosen_id), None)
    if chosen is None:
        chosen = default_job(all_jobs)
        how = "the latest incident" if chosen.incident else "the latest job"
        st.caption(f"Showing {how}, **{chosen.job_id}**. Pick another on **Monitoring history**.")
    else:
        st.caption(
            f"Job **{chosen.job_id}** ({fmt_time(chosen.scheduled_at)}), selected on "
            "**Monitoring history**."
        )
    return chosen


def job_options(jobs: Sequence[JobResult]) -> list[str]:
    """Job ids newest first (for pickers)."""
    return [j.job_id for j in reversed(jobs)]


def describe_job_option(job: JobResult) -> str:
    mark = " · incident" if job.incident else ""
    return f"{job.job_id} · {fmt_rate(job.detection_rate)}{mark}"


# --------------------------------------------------------------------------- images

#: images are shown this wide; small inputs (32×32) are enlarged by the browser with
#: ``image-rendering: pixelated`` (see :data:`PAGE_CSS`), so they stay crisp and the
#: PNGs stay small (encoding a 4× enlarged copy took 40× longer: 9.5 ms against 0.23 ms)
IMAGE_PX = 128

#: page-wide style, added once by the entry script
PAGE_CSS = """<style>
[data-testid="stImage"] img { image-rendering: pixelated; }
</style>"""


def png(image, *, max_px: int = 256) -> bytes:
    """A (C, H, W) image in [0, 1] as PNG bytes (shrunk by block averaging when larger
    than ``max_px``, never enlarged: the browser does that)."""
    from ladis_core.viz import images

    return images.png_bytes(images.thumbnail(image, max_size=max_px))


def attack_label(sample) -> str:
    """What the recorded provenance says about a flagged input ("" when unknown)."""
    record = getattr(sample, "provenance", None) or {}
    attack = record.get("attack")
    if attack is None:
        return ""
    if attack == "none":
        return "natural"
    eps = record.get("epsilon")
    if not eps:
        return str(attack)
    levels = float(eps) * 255
    # ε is usually a whole number of grey levels (8/255): say so, it is how attacks are set
    shown = f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-3 else f"{float(eps):.3g}"
    return f"{attack} ε={shown}"


ORIGINAL_CAPTIONS = {
    "recorded": "original (recorded)",
    "nearest-natural": "nearest natural neighbour",
}


def flagged_card(job: JobResult, sample, *, amplify: float | None) -> None:
    """One flagged input (a ``ReportSample``): facts, the input, its original and the
    amplified difference with its L∞ / L2 size."""
    from ladis_core.viz import images

    with st.container(border=True):
        facts, col_input, col_original, col_diff = st.columns([3, 2, 2, 2])
        facts.markdown(f"**#{sample.rank} · step {sample.step}**")
        facts.markdown(
            f"Predicted class: **{class_label(job, sample.predicted_class)}**  \n"
            f"Score: **{sample.score:.3f}**"
            + (f"  \np-value: {fmt_p(sample.p_value)}" if sample.p_value is not None else "")
        )
        truth = attack_label(sample)
        if truth:
            label = (
                ""
                if sample.original_class is None
                else f", true class {class_label(job, sample.original_class)}"
            )
            facts.caption(f"Recorded provenance: {truth}{label}")
        if sample.image is None:
            col_input.warning("Input not available", icon=":material/hide_image:")
            return
        col_input.image(png(sample.image), caption="input", width=IMAGE_PX)
        if sample.original is None:
            col_original.caption("No original: no provenance and no reference inputs.")
            return
        kind = ORIGINAL_CAPTIONS.get(sample.original_kind or "", sample.original_kind or "original")
        col_original.image(png(sample.original), caption=kind, width=IMAGE_PX)
        if sample.original_source:
            col_original.caption(sample.original_source)
        rgb, factor = images.amplified_difference(sample.image, sample.original, amplify=amplify)
        col_diff.image(png(rgb), caption=f"difference × {factor:.0f}", width=IMAGE_PX)
        size = sample.size
        if size is not None:
            col_diff.caption(f"L∞ {size.linf:.4f} · L2 {size.l2:.3f}")


# --------------------------------------------------------------------------- t-SNE

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
        column.image(png(inputs[row]), caption=f"{where} {step} · {label}", width=96)


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


# --------------------------------------------------------------------------- charts


def plot(fig, **kwargs):
    """``st.plotly_chart`` with the dashboard's defaults.

    A figure without a title would show "undefined" under Streamlit's theme, so an empty
    title text is set explicitly.
    """
    if not fig.layout.title.text:
        fig.update_layout(title_text="")
    kwargs.setdefault("config", {"displaylogo": False})
    return st.plotly_chart(fig, **kwargs)
