"""Pieces of the fleet overview page: the fleet's headline tiles and the one table of
endpoints (a sparkline of each one's last 24 h; a click opens its history)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from app import nav, state
from app.components.messages import Kpi, kpi_row
from app.text import literal
from ladis_core.fleet.status import STALE, format_age

#: how each state reads in the table, worst first (plain words: a browser without emoji
#: fonts draws emoji as empty boxes)
STATE_LABELS = {
    "failing": "FAILING",
    "incident": "INCIDENT",
    "stale": "stale",
    "quiet": "quiet",
    "untested": "too few requests",
    "no jobs": "no jobs",
}
_ORDER = list(STATE_LABELS)


def overview_kpis(statuses: Sequence[Any]) -> None:
    """Endpoints, open and unreviewed incidents, stale endpoints, failing channels."""
    channels = sorted({c for s in statuses for c in s.failing_channels})
    kpi_row(
        [
            Kpi("Endpoints", f"{len(statuses):,}"),
            Kpi(
                "Open incidents",
                f"{sum(s.open_incident for s in statuses):,}",
                "Endpoints whose latest tested window is an incident.",
            ),
            Kpi(
                "Unreviewed incidents",
                f"{sum(s.unreviewed_incidents for s in statuses):,}",
                "Incident jobs of the last 24 h without an analyst verdict.",
            ),
            Kpi(
                "Stale",
                f"{sum(s.state == STALE for s in statuses):,}",
                "No result for more than two monitoring intervals.",
            ),
            Kpi(
                "Failing",
                f"{sum(bool(s.failed_windows) for s in statuses):,} · {len(channels)}",
                "Endpoints with failed windows · alert channels whose last delivery failed"
                + (f": {literal(', '.join(channels))}" if channels else "."),
            ),
        ]
    )


def overview_frame(statuses: Sequence[Any]) -> pd.DataFrame:
    """One row per endpoint, worst state first (text columns are plain text)."""
    rows = []
    for s in statuses:
        job = s.last_job
        rows.append(
            {
                "Endpoint": s.name,
                "State": STATE_LABELS.get(s.state, s.state),
                "Last 24 h": [j.detection_rate for j in s.recent if j.detection_rate is not None],
                "Rate": None if job is None else job.detection_rate,
                "Unreviewed": s.unreviewed_incidents,
                "Last job": None if s.last_time is None else s.last_time.replace(tzinfo=None),
                "Age": format_age(s.age),
                "Failing": ", ".join(
                    [f"window {w}" for w in s.failed_windows[-2:]]
                    + [f"alerts: {c}" for c in s.failing_channels]
                ),
                "_order": _ORDER.index(s.state) if s.state in _ORDER else len(_ORDER),
            }
        )
    frame = pd.DataFrame(rows).sort_values(["_order", "Endpoint"], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def overview_table(
    frame: pd.DataFrame, *, key: str, on_select: Callable[[tuple[str, ...]], None]
) -> None:
    """The endpoints table; ``on_select(names)`` gets the names in row order on a click."""
    names = tuple(frame["Endpoint"])
    st.dataframe(
        frame,
        key=key,
        hide_index=True,
        on_select=lambda: on_select(names),
        selection_mode="single-row",
        height=min(36 * (len(frame) + 1) + 4, 720),
        column_config={
            "Last 24 h": st.column_config.LineChartColumn(
                "Last 24 h", y_min=0, y_max=100, help="Detection rate (%) of each tested job."
            ),
            "Rate": st.column_config.NumberColumn("Latest rate", format="%.0f %%"),
            "Unreviewed": st.column_config.NumberColumn(
                "Unreviewed", help="Incident jobs of the last 24 h without a verdict."
            ),
            "Last job": st.column_config.DatetimeColumn(
                "Last job (UTC)", format="YYYY-MM-DD HH:mm"
            ),
        },
    )


def on_overview_table(key: str, names: tuple[str, ...]) -> None:
    """A row was clicked: make its endpoint current; the page then opens its history."""
    event = st.session_state.get(key) or {}
    rows = (event.get("selection") or {}).get("rows") or []
    if rows:
        state.put(state.ENDPOINT, names[rows[0]])
        state.put(state.OVERVIEW_OPEN, names[rows[0]])
        state.put(state.OVERVIEW_GENERATION, int(state.get(state.OVERVIEW_GENERATION, 0)) + 1)


def open_pending_history() -> None:
    """Open the history of the endpoint clicked in the last run, if any."""
    if state.get(state.OVERVIEW_OPEN):
        state.put(state.OVERVIEW_OPEN, None)
        st.switch_page(nav.HISTORY.path)
