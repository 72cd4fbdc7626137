"""Messages and headline tiles: the no-data page, empty states, KPI rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from app.components.format import fmt_rate, job_status
from app.text import literal
from ladis_core.monitoring.results import JobResult


def no_data(world_uri: str, *, detail: str = "") -> None:
    """The friendly page shown when a world has no monitoring data yet (``detail`` is
    markdown: pass data through :func:`~app.text.literal`)."""
    st.info(
        f"**No monitoring data found in {literal(world_uri)}.**"
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
            Kpi(
                "Alert threshold",
                fmt_rate(job.alert_threshold),
                literal(job.incident_rule.describe()),
            ),
            Kpi("Requests", f"{job.requests:,}", "Inference requests in the job's window."),
            Kpi(
                "Status",
                job_status(job),
                literal(job.reason)
                or (
                    "Detection rate above the alert threshold."
                    if job.incident
                    else "Below the alert threshold."
                ),
            ),
        ]
    )
