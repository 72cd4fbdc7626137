"""Flagged inputs: a job's most suspicious inputs beside their originals and perturbations."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from app import components as ui
from app import data, state
from app.ui_errors import friendly_errors

st.title("Flagged inputs")
state.init_page("flagged")

#: 0 means "auto": the largest change of each image is drawn in full colour
AMPLIFY_CHOICES = (0.0, 10.0, 30.0, 100.0)


def summary_table(job, items) -> pd.DataFrame:
    sizes = [i.size for i in items]
    return pd.DataFrame(
        {
            "Rank": [i.rank for i in items],
            "Step": [i.step for i in items],
            "Predicted class": [ui.class_label(job, i.predicted_class) for i in items],
            "Score": [i.score for i in items],
            "p-value": [i.p_value for i in items],
            "L∞": [None if s is None else s.linf for s in sizes],
            "L2": [None if s is None else s.l2 for s in sizes],
            "Original": [ui.ORIGINAL_CAPTIONS.get(i.original_kind or "", "none") for i in items],
            "Recorded attack": [ui.attack_label(i) for i in items],
        }
    )


def main() -> None:
    world_uri, endpoint = state.world(), state.endpoint()
    job = ui.current_job(world_uri, endpoint)
    if job is None:
        return
    if not job.top_samples:
        ui.empty_state(
            f"Job {job.job_id} recorded no flagged inputs"
            + (f" ({job.reason})." if job.reason else ".")
        )
        return
    flagged = data.flagged_inputs(world_uri, endpoint, job.job_id)
    items = list(flagged.samples)
    for note in flagged.notes:
        st.warning(note, icon=":material/warning:")

    classes = sorted({i.predicted_class for i in items if i.predicted_class is not None})
    scores = [i.score for i in items]
    low, high = float(min(scores)), float(max(scores))
    with st.container(border=True):
        left, middle, right = st.columns([3, 3, 2])
        chosen = left.multiselect(
            "Predicted class",
            classes,
            key=f"{state.FLAGGED_CLASSES}.{job.job_id}",
            format_func=lambda c: ui.class_label(job, c),
            placeholder="All classes",
        )
        if high > low:
            score_range = middle.slider(
                "Score",
                min_value=low,
                max_value=high,
                value=(low, high),
                key=f"{state.FLAGGED_SCORE}.{job.job_id}",
                help="How unlike the reference the input is (higher = more suspicious).",
            )
        else:
            score_range = (low, high)
            middle.caption(f"All scores are {low:.3g}.")
        amplify = right.selectbox(
            "Amplify difference",
            AMPLIFY_CHOICES,
            key=state.FLAGGED_AMPLIFY,
            format_func=lambda f: "auto" if not f else f"× {f:g}",
            help="Perturbations of adversarial attacks are tiny; the difference image is "
            "multiplied so it can be seen (blue: darker than the original, red: brighter); "
            "auto draws the largest change of each image in full colour.",
        )

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
    with st.expander("All flagged inputs as a table"):
        st.dataframe(
            summary_table(job, shown),
            hide_index=True,
            column_config={
                "Score": st.column_config.NumberColumn(format="%.3f"),
                "p-value": st.column_config.NumberColumn(format="%.4f"),
                "L∞": st.column_config.NumberColumn(format="%.4f"),
                "L2": st.column_config.NumberColumn(format="%.3f"),
            },
        )


with friendly_errors("loading the flagged inputs"):
    main()
