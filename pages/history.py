"""Monitoring history: every job of the endpoint over time; pick one to drill into."""

from __future__ import annotations

import streamlit as st

from app import components as ui
from app import data, state
from app.ui_errors import friendly_errors
from ladis_core import viz

st.title("Monitoring history")
state.init_page("history")


def _pick(world_uri: str, endpoint: str, job_id: str | None) -> None:
    if job_id:
        state.select_job(world_uri, endpoint, job_id)
        # fresh chart/table widgets next run: their own selection would otherwise dim
        # every other point; the selected job is drawn by the figure and the table default
        state.put(state.HISTORY_GENERATION, int(state.get(state.HISTORY_GENERATION, 0)) + 1)


def _on_chart(key: str, world_uri: str, endpoint: str) -> None:
    event = st.session_state.get(key) or {}
    points = (event.get("selection") or {}).get("points") or []
    ids = [p["customdata"][0] for p in points if p.get("customdata")]
    _pick(world_uri, endpoint, ids[0] if ids else None)


def _on_table(key: str, world_uri: str, endpoint: str, ids: tuple[str, ...]) -> None:
    event = st.session_state.get(key) or {}
    rows = (event.get("selection") or {}).get("rows") or []
    _pick(world_uri, endpoint, ids[rows[0]] if rows else None)


def _on_picker(world_uri: str, endpoint: str) -> None:
    _pick(world_uri, endpoint, st.session_state.get(state.HISTORY_PICK))


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

    incidents = sum(j.incident for j in jobs)
    tested = [j for j in jobs if j.detection_rate is not None]
    ui.kpi_row(
        [
            ui.Kpi(
                "Jobs",
                f"{len(jobs):,}" + (f" of {len(all_jobs):,}" if len(jobs) < len(all_jobs) else ""),
                f"{jobs[0].job_id} … {jobs[-1].job_id}",
            ),
            ui.Kpi("Incidents", f"{incidents:,}", jobs[-1].incident_rule.describe()),
            ui.Kpi(
                "Latest detection rate", ui.fmt_rate(tested[-1].detection_rate if tested else None)
            ),
            ui.Kpi(
                "Requests", f"{sum(j.requests for j in jobs):,}", "Inference requests in the range."
            ),
            ui.Kpi(
                "Reviewed",
                f"{sum(1 for j in jobs if j.job_id in verdicts):,}",
                "Jobs in the range with an analyst verdict.",
            ),
        ]
    )

    st.subheader("Detection rate over time")
    st.caption(
        "Click a point to select that job for the other pages. Bars: requests per job (right axis)."
    )
    timeline_key = f"{state.HISTORY_TIMELINE}.{generation}"
    ui.plot(
        viz.timeline_figure(jobs, selected_job_id=selected_id),
        key=timeline_key,
        on_select=lambda: _on_chart(timeline_key, world_uri, endpoint),
        selection_mode="points",
    )

    if st.toggle("Per-layer heat map", key=state.HISTORY_SHOW_LAYERS):
        heat_key = f"{state.HISTORY_HEATMAP}.{generation}"
        ui.plot(
            viz.layer_heatmap_figure(jobs),
            key=heat_key,
            on_select=lambda: _on_chart(heat_key, world_uri, endpoint),
            selection_mode="points",
        )

    st.subheader("Jobs")
    table = ui.job_table(jobs, verdicts)
    ids = tuple(table["Job"])
    table_key = f"{state.HISTORY_TABLE}.{generation}"
    selected_row = ids.index(selected_id) if selected_id in ids else None
    st.dataframe(
        table,
        key=table_key,
        hide_index=True,
        on_select=lambda: _on_table(table_key, world_uri, endpoint, ids),
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
            "Baseline": st.column_config.NumberColumn("Baseline", format="%.0f %%"),
            "Threshold": st.column_config.NumberColumn("Threshold", format="%.0f %%"),
            "Requests": st.column_config.NumberColumn("Requests", format="%d"),
        },
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
        on_change=_on_picker,
        args=(world_uri, endpoint),
    )
    chosen = data.job(world_uri, endpoint, selected_id)
    ui.job_kpis(chosen)
    verdict = verdicts.get(chosen.job_id)
    if verdict is not None:
        st.caption(
            f"Verdict: {ui.verdict_label(verdict)} by {verdict.analyst}"
            + (f" — {verdict.note[:200]}" if verdict.note else "")
        )
    links = st.columns(4)
    links[0].page_link(
        "../pages/flagged.py", label="Flagged inputs", icon=":material/image_search:"
    )
    links[1].page_link("../pages/layers.py", label="Layer explorer", icon=":material/scatter_plot:")
    links[2].page_link(
        "../pages/on_demand.py", label="Re-test on demand", icon=":material/science:"
    )
    links[3].page_link("../pages/report.py", label="Incident report", icon=":material/description:")


with friendly_errors("loading the monitoring history"):
    main()
