"""On-demand test: the monitoring analysis on a window and settings the analyst picks."""

from __future__ import annotations

import streamlit as st

from app import auth, data, state
from app import components as ui
from app.ui_errors import friendly_errors, show_error
from ladis_core.access import Permission
from ladis_core.store import layout

st.title("On-demand test")
state.init_page("on_demand")
st.caption(
    "Run the two-sample tests of the monitoring job on any window of traffic, with your own "
    "settings. Nothing is written unless you save the result as a job."
)


def _run(world_uri: str, endpoint: str, options: dict) -> None:
    from ladis_core.monitoring import ondemand

    bar = st.progress(0.0, text="Starting…")
    stages = ("layers", "reference", "inference", "baseline", "window test", "detection", "scores")

    def progress(p) -> None:
        at = stages.index(p.stage) if p.stage in stages else len(stages) - 1
        bar.progress(
            min(1.0, (at + p.fraction) / len(stages)),
            text=f"{p.stage}: {ui.literal(p.message)}".rstrip(": "),
        )

    try:
        with data.run_gate().hold(auth.current().key):
            result = ondemand.run_test(
                **options,
                endpoint=endpoint,
                monitoring=layout.monitoring_uri(world_uri, endpoint),
                sources=data.sources(),
                caps=data.cost_caps(),
                progress=progress,
            )
    except Exception as exc:  # noqa: BLE001 - shown as a message
        bar.empty()
        show_error(exc, action="running the test")
        return
    bar.empty()
    state.put(state.ON_DEMAND_RESULT, (world_uri, endpoint, result))
    state.put(state.ON_DEMAND_SAVED, None)


def main() -> None:
    world_uri, endpoint = state.world(), state.endpoint()
    job = ui.current_job(world_uri, endpoint)
    if job is None or not auth.require(Permission.RUN_TEST):
        return
    options = ui.on_demand_form(world_uri, endpoint, job)
    if options is not None:
        _run(world_uri, endpoint, options)
    last = state.get(state.ON_DEMAND_RESULT)
    if last and last[:2] == (world_uri, endpoint):
        ui.on_demand_results(world_uri, endpoint, last[2])


with friendly_errors("preparing the on-demand test"):
    main()
