"""Pieces of the monitoring history page: its headline tiles, the jobs table and the
summary of the selected job."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from app import nav, state
from app.components.format import fmt_rate, verdict_label
from app.components.jobs import job_table
from app.components.messages import Kpi, job_kpis, kpi_row
from app.text import literal
from ladis_core.monitoring.results import JobResult


def history_kpis(
    jobs: Sequence[JobResult], all_jobs: Sequence[JobResult], verdicts: Mapping[str, Any]
) -> None:
    """Jobs, incidents, the latest rate, requests and reviewed jobs of the shown range."""
    tested = [j for j in jobs if j.detection_rate is not None]
    shown = f"{len(jobs):,}" + (f" of {len(all_jobs):,}" if len(jobs) < len(all_jobs) else "")
    kpi_row(
        [
            Kpi("Jobs", shown, literal(f"{jobs[0].job_id} … {jobs[-1].job_id}")),
            Kpi(
                "Incidents",
                f"{sum(j.incident for j in jobs):,}",
                literal(jobs[-1].incident_rule.describe()),
            ),
            Kpi("Latest detection rate", fmt_rate(tested[-1].detection_rate if tested else None)),
            Kpi(
                "Requests", f"{sum(j.requests for j in jobs):,}", "Inference requests in the range."
            ),
            Kpi(
                "Reviewed",
                f"{sum(1 for j in jobs if j.job_id in verdicts):,}",
                "Jobs in the range with an analyst verdict.",
            ),
        ]
    )


def jobs_table(
    jobs: Sequence[JobResult],
    verdicts: Mapping[str, Any],
    *,
    key: str,
    selected_id: str | None,
    on_select: Callable[[tuple[str, ...]], None],
) -> None:
    """The jobs, newest first, one selectable row each; ``on_select(ids)`` is called with
    the job ids in row order when the analyst picks a row."""
    table = job_table(jobs, verdicts)
    ids = tuple(table["Job"])
    selected_row = ids.index(selected_id) if selected_id in ids else None
    st.dataframe(
        table,
        key=key,
        hide_index=True,
        on_select=lambda: on_select(ids),
        selection_mode="single-row",
        selection_default=None if selected_row is None else {"selection": {"rows": [selected_row]}},
        height=320,
        column_config={
            "Scheduled": st.column_config.DatetimeColumn(
                "Scheduled (UTC)", format="YYYY-MM-DD HH:mm"
            ),
            "Detection rate": st.column_config.ProgressColumn(
                "Detection rate", format="%.0f %%", min_value=0, max_value=100
            ),
            "Window p": st.column_config.NumberColumn(
                "Window p", format="%.4f", help="p-value of the window test (decides incidents)"
            ),
            "Crafted share": st.column_config.TextColumn(
                "Crafted share", help="95 % interval of the share of requests that look crafted"
            ),
            "Baseline": st.column_config.NumberColumn("Baseline", format="%.0f %%"),
            "Threshold": st.column_config.NumberColumn("Threshold", format="%.0f %%"),
            "Requests": st.column_config.NumberColumn("Requests", format="%d"),
        },
    )


def selected_job_summary(job: JobResult, verdict: Any | None) -> None:
    """The selected job's tiles, its verdict and links to the pages that drill into it."""
    job_kpis(job)
    if verdict is not None:
        st.caption(
            literal(
                f"Verdict: {verdict_label(verdict)} by {verdict.analyst}"
                + (f" — {verdict.note[:200]}" if verdict.note else "")
            )
        )
    nav.page_links((nav.FLAGGED, nav.LAYERS, nav.ON_DEMAND, nav.REPORT))


def _pick(world_uri: str, endpoint: str, job_id: str | None) -> None:
    if job_id:
        state.select_job(world_uri, endpoint, job_id)
        # fresh chart/table widgets next run: their own selection would otherwise dim
        # every other point; the selected job is drawn by the figure and the table default
        state.put(state.HISTORY_GENERATION, int(state.get(state.HISTORY_GENERATION, 0)) + 1)


def on_history_chart(key: str, world_uri: str, endpoint: str) -> None:
    """A point of the timeline or heat map chart ``key`` was clicked: select its job."""
    event = st.session_state.get(key) or {}
    points = (event.get("selection") or {}).get("points") or []
    ids = [p["customdata"][0] for p in points if p.get("customdata")]
    _pick(world_uri, endpoint, ids[0] if ids else None)


def on_history_table(key: str, world_uri: str, endpoint: str, ids: tuple[str, ...]) -> None:
    """A row of the jobs table ``key`` was picked: select its job."""
    event = st.session_state.get(key) or {}
    rows = (event.get("selection") or {}).get("rows") or []
    _pick(world_uri, endpoint, ids[rows[0]] if rows else None)


def on_history_picker(world_uri: str, endpoint: str) -> None:
    """The job picker changed: select its job."""
    _pick(world_uri, endpoint, st.session_state.get(state.HISTORY_PICK))
