"""Flagged inputs: a job's most suspicious inputs beside their originals and perturbations."""

from __future__ import annotations

import math

import streamlit as st

from app import components as ui
from app import data, state
from app.ui_errors import friendly_errors

st.title("Flagged inputs")
state.init_page("flagged")


def main() -> None:
    world_uri, endpoint = state.world(), state.endpoint()
    job = ui.current_job(world_uri, endpoint)
    if job is None:
        return
    if not job.top_samples:
        ui.empty_state(
            f"Job {ui.literal(job.job_id)} recorded no flagged inputs"
            + (f" ({ui.literal(job.reason)})." if job.reason else ".")
        )
        return
    flagged = data.flagged_inputs(world_uri, endpoint, job.job_id)
    items = list(flagged.samples)
    for note in flagged.notes:
        st.warning(ui.literal(note), icon=":material/warning:")
    ui.share_panel(job)

    chosen, score_range, amplify = ui.flagged_filters(job, items)
    shown = [
        i
        for i in items
        if (not chosen or i.predicted_class in chosen)
        and score_range[0] <= i.score <= score_range[1]
    ]
    if not shown:
        ui.empty_state("No flagged input matches these filters; widen the class or score filter.")
        return
    size = int(st.session_state.get(state.FLAGGED_PAGE_SIZE, 10))
    pages = max(1, math.ceil(len(shown) / size))
    if int(st.session_state.get(state.FLAGGED_PAGE, 1)) > pages:
        st.session_state[state.FLAGGED_PAGE] = 1
    st.caption(
        f"{len(shown)} of {len(items)} flagged inputs, ranked by score (most suspicious first)."
    )

    page = int(st.session_state.get(state.FLAGGED_PAGE, 1))
    for item in shown[(page - 1) * size : page * size]:
        ui.flagged_card(job, item, amplify=amplify or None)

    nav_left, nav_mid, nav_right = st.columns([2, 2, 6])
    nav_left.number_input("Page", min_value=1, max_value=pages, step=1, key=state.FLAGGED_PAGE)
    nav_mid.selectbox("Per page", [5, 10, 20, 50, 100], key=state.FLAGGED_PAGE_SIZE)
    nav_right.caption(f"Page {page} of {pages}")
    if any(i.original_kind == "nearest-natural" for i in shown):
        st.caption(
            "Where no provenance was recorded, the original shown is the nearest natural image "
            "of the reference (pixel space): a stand-in, not the true source."
        )
    ui.flagged_table(job, shown)


with friendly_errors("loading the flagged inputs"):
    main()
