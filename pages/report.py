"""Incident report: export a job (or a range of jobs) and record the analyst's verdict."""

from __future__ import annotations

import streamlit as st

from app import components as ui
from app import data, state
from app.ui_errors import friendly_errors

st.title("Incident report")
state.init_page("report")

SCOPES = ("This job", "A range of jobs")


def main() -> None:
    world_uri, endpoint = state.world(), state.endpoint()
    job = ui.current_job(world_uri, endpoint)
    if job is None:
        return
    ui.job_kpis(job)
    jobs = data.jobs(world_uri, endpoint)

    st.subheader("Export")
    scope = st.segmented_control("Scope", SCOPES, key=state.REPORT_SCOPE) or SCOPES[0]
    if scope == SCOPES[0]:
        chosen = (job.job_id,)
    else:
        ids = [j.job_id for j in jobs]
        at = ids.index(job.job_id)
        start, end = st.select_slider(
            "Jobs",
            ids,
            value=(ids[max(0, at - 3)], ids[min(len(ids) - 1, at + 3)]),
            key=f"{state.REPORT_RANGE}.{job.job_id}",
        )
        chosen = tuple(ids[ids.index(start) : ids.index(end) + 1])
    tsne = data.report_embedding_key(world_uri, endpoint, job)
    ui.report_downloads(world_uri, endpoint, chosen, tsne)

    st.subheader(f"Verdict on job {ui.literal(job.job_id)}")
    ui.verdict_form(world_uri, endpoint, job)


with friendly_errors("preparing the incident report"):
    main()
