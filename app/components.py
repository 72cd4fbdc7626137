"""Reusable pieces of the dashboard: formatting, messages, KPI rows, job context.

Pages compose these so every page shows numbers, empty states and the selected job the
same way. Nothing here reads storage except through :mod:`app.data`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import streamlit as st

from app import data, state
from ladis_core.results import STATUS_OK, JobResult

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
    return {"confirmed": "✅ confirmed", "dismissed": "✖ dismissed", "needs-review": "🔎 needs review"}.get(
        getattr(verdict, "verdict", ""), str(getattr(verdict, "verdict", ""))
    )


def job_status(job: JobResult) -> str:
    if job.status != STATUS_OK:
        return "not tested"
    return "🚨 incident" if job.incident else "normal"


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
        delta = f"{job.detection_rate - job.baseline_detection_rate:+.0f} points vs baseline"
    kpi_row(
        [
            Kpi("Detection rate", fmt_rate(job.detection_rate), "Share of the R two-sample tests "
                "with p < α, all layers combined.", delta, "inverse"),
            Kpi("Baseline rate", fmt_rate(job.baseline_detection_rate),
                "The same protocol on two halves of the natural data: the false-positive rate."),
            Kpi("Alert threshold", fmt_rate(job.alert_threshold), job.incident_rule.describe()),
            Kpi("Requests", f"{job.requests:,}", "Inference requests in the job's window."),
            Kpi("Status", job_status(job), job.reason or None),
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
        st.caption(
            f"Showing {how}, **{chosen.job_id}**. Pick another on **Monitoring history**."
        )
    else:
        st.caption(f"Job **{chosen.job_id}** ({fmt_time(chosen.scheduled_at)}), selected on "
                   "**Monitoring history**.")
    return chosen


def job_options(jobs: Sequence[JobResult]) -> list[str]:
    """Job ids newest first (for pickers)."""
    return [j.job_id for j in reversed(jobs)]


def describe_job_option(job: JobResult) -> str:
    mark = " 🚨" if job.incident else ""
    return f"{job.job_id} · {fmt_rate(job.detection_rate)}{mark}"
