"""LADIS dashboard entry: the router and frame.

Run with ``python -m ladis_core dashboard`` (or ``streamlit run app/streamlit_app.py``).
This script sets the page config, lets the sign-in gate decide whether the visitor sees
anything (:func:`app.auth.gate`: nothing but a sign-in screen until signed in, when
sign-in is configured), draws the shared sidebar (who is signed in, data source,
endpoint, refresh), declares the pages with ``st.navigation`` and runs the chosen one.
Pages live in ``pages/`` beside ``app/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit puts only this file's folder on sys.path; the project is installed in the
# venv (pip install -e .), but a plain checkout must work too.
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import streamlit as st  # noqa: E402

from app import auth, data, nav, state  # noqa: E402
from app.components import PAGE_CSS, no_data  # noqa: E402
from app.text import literal  # noqa: E402
from app.ui_errors import show_error  # noqa: E402
from ladis_core.access import Permission  # noqa: E402
from ladis_core.config import S3Settings  # noqa: E402
from ladis_core.errors import BucketNotFoundError, DataNotFoundError  # noqa: E402
from ladis_core.monitoring import world  # noqa: E402

st.set_page_config(page_title="LADIS", page_icon=":material/radar:", layout="wide")
st.html(PAGE_CSS)
state.init()
# nothing below runs for a visitor who may see nothing (not signed in, session ended)
identity = auth.gate()

pg = nav.navigation()


def _on_refresh() -> None:
    data.refresh()


def sidebar() -> None:
    """Data source, endpoint and refresh; sets ``state.WORLD_ERROR`` when the source
    cannot be read (pages then show nothing but that message)."""
    state.put(state.WORLD_ERROR, None)
    with st.sidebar:
        st.markdown("### :material/radar: LADIS")
        st.caption("Adversarial input distributions, detected by layerwise statistics.")
        auth.account_box()
        may_change = identity.can(Permission.CHANGE_SOURCE)
        if not may_change:
            # whatever a client sends for the (disabled) box, only admins choose the source
            state.put(state.WORLD_URI, state.default_world_uri())
        st.text_input(
            "Data source",
            key=state.WORLD_URI,
            disabled=not may_change,
            help="Where the monitoring results and trials live: s3://bucket/prefix/ or a "
            f"local folder, within the allowed sources ({literal(data.sources().describe())})."
            + ("" if may_change else " Changing it needs the admin role."),
        )
        st.caption(f"S3: {literal(S3Settings.from_environment().describe())}")
        try:
            uri = world.normalize_world_uri(state.get(state.WORLD_URI, ""))
            names = data.endpoints(uri)
        except Exception as exc:  # noqa: BLE001 - shown as a message, see ui_errors
            state.put(state.WORLD_ERROR, exc)
            names = []
        if names:
            if state.get(state.ENDPOINT) not in names:
                state.put(state.ENDPOINT, names[0])
            st.selectbox(
                "Endpoint", names, key=state.ENDPOINT, help="The deployed model to look at."
            )
        else:
            state.put(state.ENDPOINT, None)
        st.button(
            "Refresh",
            icon=":material/refresh:",
            on_click=_on_refresh,
            help="Read the data source again (new jobs, verdicts, trials).",
            width="stretch",
        )
        job_id = state.selected_job(state.world(), state.get(state.ENDPOINT) or "")
        if job_id and names:
            st.caption(f"Selected job: **{literal(job_id)}**")


sidebar()
error = state.get(state.WORLD_ERROR)
if error is not None:
    st.title(pg.title)
    source = str(state.get(state.WORLD_URI, ""))
    if isinstance(error, DataNotFoundError | BucketNotFoundError):
        # a missing bucket or folder is the first-run case, not a failure
        no_data(source, detail=literal(str(error).rstrip(".") + "."))
    else:
        show_error(error, action=f"opening the data source {source}")
    st.stop()
pg.run()
