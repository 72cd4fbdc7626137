"""Fleet overview: every endpoint at a glance; click one to open its history."""

from __future__ import annotations

import streamlit as st

from app import components as ui
from app import data, state
from app.text import literal
from app.ui_errors import friendly_errors

st.title("Fleet overview")
state.init_page("overview")


def main() -> None:
    ui.open_pending_history()
    world_uri = state.world()
    statuses = data.fleet_overview(world_uri)
    if not statuses:
        ui.no_data(world_uri)
        return
    ui.overview_kpis(statuses)
    st.caption(
        "One row per endpoint, worst first: its state, the detection rate of each job of "
        "its last 24 h, open incidents without a verdict, when it last ran and what is "
        "failing. Click a row to open that endpoint's monitoring history."
    )
    key = f"{state.OVERVIEW_TABLE}.{state.get(state.OVERVIEW_GENERATION, 0)}"
    ui.overview_table(
        ui.overview_frame(statuses),
        key=key,
        on_select=lambda names: ui.on_overview_table(key, names),
    )
    failing = sorted({c for s in statuses for c in s.failing_channels})
    if failing:
        st.warning(
            f"Alert channels failing: {literal(', '.join(failing))}. Their last delivery failed after "
            "every retry; `python -m ladis_core fleet status` shows which endpoints they serve.",
            icon=":material/notifications_off:",
        )


with friendly_errors("loading the fleet overview"):
    main()
