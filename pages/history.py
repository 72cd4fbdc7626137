"""Monitoring history: every job of the endpoint over time; pick one to drill into."""

from __future__ import annotations

import streamlit as st

from app import components as ui
from app import data, state
from app.ui_errors import friendly_errors
from ladis_core import viz

st.title("Monitoring history")
state.init_page("history")


def main() -> None:
    world_uri, endpoint = state.world(), state.endpoint()
    if not endpoint:
        ui.no_data(world_uri)
        return
    jobs = data.jobs(world_uri, endpoint)
    if not jobs:
        ui.no_data(world_uri, detail=f"Endpoint `{endpoint}` has no monitoring jobs yet.")
        return
    verdicts = data.latest_verdicts(world_uri, endpoint)
    all_jobs = jobs
    span_label = (
        st.segmented_control(
            "Range",
            list(ui.HISTORY_RANGES),
            key=state.HISTORY_RANGE,
            help="Counted back from the latest job.",
        )
        or "All"
    )
    jobs = ui.in_range(all_jobs, ui.HISTORY_RANGES[span_label])
    selected_id = state.selected_job(world_uri, endpoint) or ui.default_job(all_jobs).job_id
    generation = int(state.get(state.HISTORY_GENERATION, 0))

    ui.history_kpis(jobs, all_jobs, verdicts)

    st.subheader("Detection rate over time")
    st.caption(
        "Click a point to select that job for the other pages. Bars: requests per job (right axis)."
    )
    timeline_key = f"{state.HISTORY_TIMELINE}.{generation}"
    ui.plot(
        viz.timeline_figure(jobs, selected_job_id=selected_id),
        key=timeline_key,
        on_select=lambda: ui.on_history_chart(timeline_key, world_uri, endpoint),
        selection_mode="points",
    )

    if st.toggle("Per-layer heat map", key=state.HISTORY_SHOW_LAYERS):
        heat_key = f"{state.HISTORY_HEATMAP}.{generation}"
        ui.plot(
            viz.layer_heatmap_figure(jobs),
            key=heat_key,
            on_select=lambda: ui.on_history_chart(heat_key, world_uri, endpoint),
            selection_mode="points",
        )

    st.subheader("Jobs")
    table_key = f"{state.HISTORY_TABLE}.{generation}"
    ui.jobs_table(
        jobs,
        verdicts,
        key=table_key,
        selected_id=selected_id,
        on_select=lambda ids: ui.on_history_table(table_key, world_uri, endpoint, ids),
    )

    st.subheader("Selected job")
    by_id = {j.job_id: j for j in jobs}
    if st.session_state.get(state.HISTORY_PICK) != selected_id:
        st.session_state[state.HISTORY_PICK] = selected_id
    st.selectbox(
        "Job",
        ui.job_options(jobs),
        key=state.HISTORY_PICK,
        format_func=lambda job_id: ui.describe_job_option(by_id[job_id]),
        on_change=ui.on_history_picker,
        args=(world_uri, endpoint),
    )
    chosen = data.job(world_uri, endpoint, selected_id)
    ui.selected_job_summary(chosen, verdicts.get(chosen.job_id))


with friendly_errors("loading the monitoring history"):
    main()
