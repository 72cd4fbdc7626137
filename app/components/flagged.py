"""Pieces of the flagged-inputs page: the filters and the table of flagged inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.components.charts import plot
from app.components.format import attack_label, class_label, fmt_p
from app.components.images import ORIGINAL_CAPTIONS
from app.text import literal
from ladis_core import viz
from ladis_core.monitoring.results import JobResult

#: 0 means "auto": the largest change of each image is drawn in full colour
AMPLIFY_CHOICES = (0.0, 10.0, 30.0, 100.0)


def summary_table(job: JobResult, items: Sequence[Any]) -> pd.DataFrame:
    """One row per flagged input (a ``ReportSample``): rank, step, class, score, sizes."""
    sizes = [i.size for i in items]
    return pd.DataFrame(
        {
            "Rank": [i.rank for i in items],
            "Step": [i.step for i in items],
            "Predicted class": [class_label(job, i.predicted_class) for i in items],
            "Score": [i.score for i in items],
            "p-value": [i.p_value for i in items],
            "L∞": [None if s is None else s.linf for s in sizes],
            "L2": [None if s is None else s.l2 for s in sizes],
            "Original": [ORIGINAL_CAPTIONS.get(i.original_kind or "", "none") for i in items],
            "Recorded attack": [attack_label(i) for i in items],
        }
    )


def flagged_filters(
    job: JobResult, items: Sequence[Any]
) -> tuple[list[int], tuple[float, float], float]:
    """The class filter, score range and amplification the analyst chose for ``items``."""
    classes = sorted({i.predicted_class for i in items if i.predicted_class is not None})
    scores = [i.score for i in items]
    low, high = float(min(scores)), float(max(scores))
    with st.container(border=True):
        left, middle, right = st.columns([3, 3, 2])
        chosen = left.multiselect(
            "Predicted class",
            classes,
            key=f"{state.FLAGGED_CLASSES}.{job.job_id}",
            format_func=lambda c: class_label(job, c),
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
    return chosen, score_range, amplify


def flagged_table(job: JobResult, shown: Sequence[Any]) -> None:
    """The shown flagged inputs as a table, in an expander."""
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


def share_panel(job: JobResult) -> None:
    """How much of the window looks crafted, and which predicted classes carry it."""
    test = job.window_test
    if test is None:
        st.caption("This job was recorded before the window test: no crafted-share estimate.")
        return
    verdict = "an incident" if job.incident else "no incident"
    st.info(
        f"{test.share.describe('this window’s requests').capitalize()}. Window test "
        f"p = {fmt_p(test.p_value)}: {verdict} ({literal(job.incident_rule.describe())}).",
        icon=":material/pie_chart:",
    )
    if not test.classes:
        return
    with st.expander("Per predicted class: which classes carry the excess"):
        plot(viz.class_share_figure(job))
        st.dataframe(class_table(job), hide_index=True)


def class_table(job: JobResult) -> pd.DataFrame:
    """One row per predicted class of the window: rows and the crafted share."""
    rows = []
    assert job.window_test is not None
    for c in sorted(job.window_test.classes, key=lambda c: c.predicted_class):
        share = c.share
        rows.append(
            {
                "Predicted class": class_label(job, c.predicted_class),
                "Window requests": c.window_rows,
                "Reference rows": c.reference_rows,
                "Crafted share": "not tested"
                if share is None
                else f"{100 * share.low:.0f}–{100 * share.high:.0f} %",
                "Estimate": None if share is None else round(100 * share.estimate, 1),
            }
        )
    return pd.DataFrame(rows)
