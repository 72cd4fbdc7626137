"""Pieces of the on-demand test page: its form, and the result with "save as job"."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import auth, data, state
from app.components.charts import plot
from app.components.format import fmt_p
from app.components.messages import job_kpis
from app.text import literal
from app.ui_errors import show_error
from ladis_core import viz
from ladis_core.access import Permission
from ladis_core.monitoring.results import JobResult, JobSettings
from ladis_core.store import layout

WINDOWS = ("Jobs", "Steps")


def on_demand_form(world_uri: str, endpoint: str, job: JobResult) -> dict | None:
    """The form; returns the chosen options when submitted. Its bounds are the cost caps
    (:func:`app.data.cost_caps`), which the test enforces again."""
    jobs = data.jobs(world_uri, endpoint)
    caps = data.cost_caps()
    window_kind = st.segmented_control("Window", WINDOWS, key=state.ON_DEMAND_WINDOW) or WINDOWS[0]
    with st.form(f"{state.ON_DEMAND_FORM}.{job.job_id}"):
        left, right = st.columns(2)
        reference = left.text_input("Reference trial (natural, EVAL)", value=job.reference)
        inference = right.text_input("Inference trial (traffic, PREDICT)", value=job.inference)
        if window_kind == "Jobs":
            ids = [j.job_id for j in jobs]
            start, end = st.select_slider(
                "Jobs (their inference windows)", ids, value=(job.job_id, job.job_id)
            )
            picked = [
                j for j in jobs[ids.index(start) : ids.index(end) + 1] if j.first_step is not None
            ]
            first = min((j.first_step for j in picked), default=None)
            last = max((j.last_step for j in picked if j.last_step is not None), default=None)
        else:
            a, b = st.columns(2)
            first = a.number_input(
                "First step", min_value=0, value=int(job.first_step or 0), step=1
            )
            last = b.number_input("Last step", min_value=0, value=int(job.last_step or 0), step=1)
        st.caption(
            f"A test reads at most {caps.max_steps:,} steps ({caps.setting('max_steps')}) and "
            f"{caps.max_layers} layers ({caps.setting('max_layers')}); one test at a time."
        )
        try:
            available = data.trial_layers(inference, "PREDICT")
        except Exception:  # noqa: BLE001 - the test itself reports a bad trial clearly
            available = list(job.layers)
        defaults = [n for n in data.job_layers(job) if n in available] or available[-1:]
        layers = st.multiselect("Layers", available, default=defaults)
        settings = job.settings
        c1, c2, c3, c4, c5 = st.columns(5)
        n = c1.number_input(
            "n (rows per sample)",
            min_value=2,
            max_value=caps.max_n,
            value=min(int(settings.n_samples), caps.max_n),
            help=f"At most {caps.max_n:,} ({caps.setting('max_n')}).",
        )
        repeats = c2.number_input(
            "R (repetitions)",
            min_value=1,
            max_value=caps.max_repeats,
            value=min(int(settings.n_repeats), caps.max_repeats),
            help=f"At most {caps.max_repeats:,} ({caps.setting('max_repeats')}).",
        )
        alpha = c3.number_input(
            "α",
            min_value=0.001,
            max_value=0.5,
            value=float(settings.alpha),
            step=0.01,
            format="%.3f",
        )
        perms = c4.number_input(
            "Permutations",
            min_value=1,
            max_value=caps.max_permutations,
            value=min(int(settings.n_permutations), caps.max_permutations),
            step=100,
            help=f"At most {caps.max_permutations:,} ({caps.setting('max_permutations')}).",
        )
        seed = c5.number_input("Seed", min_value=0, value=int(settings.seed or 0), step=1)
        matched = st.checkbox(
            "Class-matched reference sampling",
            value=bool(settings.class_matched),
            help="Draw reference rows with the predicted-class mix of the window, so a "
            "benign change in class mix is not taken for an attack.",
        )
        if not st.form_submit_button("Run test", type="primary", icon=":material/play_arrow:"):
            return None
    return {
        "reference": reference.strip(),
        "inference": inference.strip(),
        "layers": list(layers),
        "after_step": None if first is None else int(first) - 1,
        "until_step": None if last is None else int(last),
        "settings": JobSettings(
            n_samples=int(n),
            n_repeats=int(repeats),
            alpha=float(alpha),
            n_permutations=int(perms),
            seed=int(seed),
            class_matched=matched,
            kernel=settings.kernel,
            standardize=settings.standardize,
            combination=settings.combination,
        ),
        "rule": job.incident_rule,
    }


def window_test_table(result: JobResult) -> None:
    """The window test beside the detection rate: its p-value per layer and statistic."""
    test = result.window_test
    assert test is not None
    st.markdown(
        f"**Window test** — all {test.window_rows:,} distinct requests against "
        f"{test.reference_rows:,} reference rows, B = {test.n_permutations:,}: "
        f"p = {fmt_p(test.p_value)}"
    )
    rows = [
        {"Layer": name, "Window test p": p, **test.statistics.get(name, {})}
        for name, p in test.layers.items()
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _save(world_uri: str, endpoint: str, result) -> None:
    from ladis_core.errors import PermissionDeniedError
    from ladis_core.monitoring import ondemand

    try:
        if not auth.allowed(Permission.SAVE_JOB):
            raise PermissionDeniedError("saving a test as a job needs the analyst role")
        uri = ondemand.save_job(result, layout.monitoring_uri(world_uri, endpoint))
    except Exception as exc:  # noqa: BLE001 - shown as a message
        state.put(state.ON_DEMAND_SAVED, exc)
        return
    data.refresh()
    state.put(state.ON_DEMAND_SAVED, uri)


def on_demand_results(world_uri: str, endpoint: str, result: JobResult) -> None:
    """The result of the last test: tiles, per-layer rates, p-values and "Save as job"."""
    st.subheader(
        f"Result · steps {result.first_step}–{result.last_step} · test {literal(result.job_id)}"
    )
    job_kpis(result)
    if result.window_test is not None:
        window_test_table(result)
    left, right = st.columns(2)
    with left:
        st.markdown("**Detection rate per layer**")
        plot(viz.layer_bars_figure(result))
    with right:
        st.markdown("**p-values of the R tests**")
        plot(
            viz.pvalue_histogram_figure(
                {n: r.p_values for n, r in result.layers.items()}, alpha=result.settings.alpha
            ),
        )
    saved = state.get(state.ON_DEMAND_SAVED)
    if isinstance(saved, str):
        st.success(
            f"Saved as job **{literal(result.job_id)}** ({literal(saved)}). It is now on the "
            "history page.",
            icon=":material/check_circle:",
        )
    elif auth.allowed(Permission.SAVE_JOB):
        if saved is not None:
            show_error(saved, action="saving the job")
        st.button(
            "Save as job",
            icon=":material/save:",
            on_click=_save,
            args=(world_uri, endpoint, result),
            help="Write this result next to the scheduled jobs, in the same format.",
        )
