"""Job lists and the job a page shows: ranges, the jobs table, the selected or default job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from app import data, state
from app.components.format import fmt_rate, fmt_share, fmt_time, job_status, verdict_label
from app.components.messages import no_data
from app.text import literal
from ladis_core.monitoring.jobs import job_time
from ladis_core.monitoring.results import JobResult


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
                "Window p": job.window_p_value,
                "Crafted share": fmt_share(
                    None if job.window_test is None else job.window_test.share
                ),
                "Detection rate": job.detection_rate,
                "Baseline": job.baseline_detection_rate,
                "Threshold": job.alert_threshold,
                "Requests": job.requests,
                "Verdict": verdict_label(verdicts.get(job.job_id)),
                "Source": job.source,
            }
        )
    return pd.DataFrame(rows)


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
        no_data(world_uri, detail=f"Endpoint {literal(endpoint)} has no monitoring jobs yet.")
        return None
    chosen_id = state.selected_job(world_uri, endpoint)
    chosen = next((j for j in all_jobs if j.job_id == chosen_id), None)
    if chosen is None:
        chosen = default_job(all_jobs)
        how = "the latest incident" if chosen.incident else "the latest job"
        st.caption(
            f"Showing {how}, **{literal(chosen.job_id)}**. Pick another on **Monitoring history**."
        )
    else:
        st.caption(
            f"Job **{literal(chosen.job_id)}** ({literal(fmt_time(chosen.scheduled_at))}), selected on "
            "**Monitoring history**."
        )
    return chosen


def job_options(jobs: Sequence[JobResult]) -> list[str]:
    """Job ids newest first (for pickers)."""
    return [j.job_id for j in reversed(jobs)]


def describe_job_option(job: JobResult) -> str:
    mark = " · incident" if job.incident else ""
    return f"{job.job_id} · {fmt_rate(job.detection_rate)}{mark}"
