"""Messages and headline tiles: the no-data page, empty states, KPI rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from app.components.format import fmt_p, fmt_rate, fmt_share, job_status
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
    """The headline numbers of one job: the window test that decides, the share of
    requests that look crafted, and the detection rate beside them."""
    delta = None
    if job.detection_rate is not None and job.baseline_detection_rate is not None:
        delta = f"{job.detection_rate - job.baseline_detection_rate:+.0f} pts"
    test = job.window_test
    rule = literal(job.incident_rule.describe())
    baseline_help = (
        "The detection-rate protocol on two halves of the natural data: its false-positive rate."
    )
    if job.baseline_range is not None:
        low, high = job.baseline_range
        baseline_help += (
            f" Range over {job.baseline_splits} reference splits: {low:.0f}–{high:.0f} %."
        )
    kpi_row(
        [
            Kpi(
                "Window test p",
                fmt_p(None if test is None else test.p_value),
                "One exact permutation test on every distinct request of the window (layers "
                f"and kernels combined); incident when {rule}."
                if test is not None
                else "This job was recorded before the window test existed.",
            ),
            Kpi(
                "Crafted share",
                fmt_share(None if test is None else test.share),
                None
                if test is None
                else test.share.describe("the window's requests").capitalize() + ".",
            ),
            Kpi(
                "Detection rate",
                fmt_rate(job.detection_rate),
                "Share of the R two-sample tests with p < α, all layers combined "
                f"(alert threshold of the detection-rate rule: {fmt_rate(job.alert_threshold)}).",
                delta,
                "inverse",
            ),
            Kpi("Baseline rate", fmt_rate(job.baseline_detection_rate), baseline_help),
            Kpi("Requests", f"{job.requests:,}", _requests_help(job)),
            Kpi(
                "Status",
                job_status(job),
                literal(job.reason)
                or (f"Incident: {rule}." if job.incident else f"No incident ({rule} not met)."),
            ),
        ]
    )
    for warning in job.warnings:
        st.caption(f":material/warning: {literal(warning)}")


def _requests_help(job: JobResult) -> str:
    text = "Inference requests in the job's window."
    if job.window_test is not None:
        test = job.window_test
        text += (
            f" The window test compared {test.window_rows:,} distinct requests with "
            f"{test.reference_rows:,} reference rows"
            + (
                f"; {test.duplicates:,} repeated requests were tested once."
                if test.duplicates
                else "."
            )
        )
    return text
