"""Every session-state key of the dashboard, in one place.

Keys are prefixed by the page that owns them (``overview.``, ``history.``, ``flagged.``, ``layers.``,
``on_demand.``, ``report.``); ``shared.`` keys are set in the sidebar or on one page and
read on the others (the data source, the endpoint and the selected job). Defaults are set
with ``setdefault`` so a value chosen by the analyst is never overwritten by a rerun.

Widget keys are listed here too. Streamlit forgets the state of a page's widgets when
another page is shown, and in a browser it also drops a value set for a widget key in a
run where that widget is not drawn. So the defaults of a page's widgets are set by
:func:`init_page`, called at the top of that page (the same run that draws them); the
``shared.`` keys that are not widgets are set by :func:`init` and survive page changes.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

# -- shared (sidebar and cross-page) -------------------------------------------------
WORLD_URI = "shared.world_uri"  # text input: s3://bucket/prefix/ or a folder
ENDPOINT = "shared.endpoint"  # selectbox: endpoint name
SELECTED_JOB = "shared.selected_job"  # job id picked on the history page (not a widget)
SELECTED_FOR = "shared.selected_for"  # (world, endpoint) the selection belongs to
WORLD_ERROR = "shared.world_error"  # the exception met reading the data source, or None
IDENTITY = "shared.identity"  # app.auth.Identity of this run (set by the sign-in gate)

# -- fleet overview ---------------------------------------------------------------------
OVERVIEW_TABLE = "overview.table"  # dataframe selection event (+ "." + generation)
OVERVIEW_GENERATION = "overview.generation"  # bumped to recreate the table widget
OVERVIEW_OPEN = "overview.open"  # the endpoint clicked: its history opens next

# -- monitoring history -----------------------------------------------------------------
HISTORY_TIMELINE = "history.timeline"  # plotly chart selection event
HISTORY_TABLE = "history.table"  # dataframe selection event
HISTORY_HEATMAP = "history.heatmap"  # plotly heat map selection event
HISTORY_GENERATION = "history.generation"  # bumped to recreate chart/table widgets
HISTORY_PICK = "history.pick"  # selectbox mirroring the selected job
HISTORY_SHOW_LAYERS = "history.show_layers"
HISTORY_RANGE = "history.range"  # "24 hours" / "7 days" / "30 days" / "All"

# -- flagged inputs ---------------------------------------------------------------------
FLAGGED_CLASSES = "flagged.classes"  # + "." + job id: class filter
FLAGGED_SCORE = "flagged.score"  # + "." + job id: score range slider
FLAGGED_PAGE = "flagged.page"
FLAGGED_PAGE_SIZE = "flagged.page_size"
FLAGGED_AMPLIFY = "flagged.amplify"

# -- layer explorer ---------------------------------------------------------------------
LAYERS_CHOSEN = "layers.chosen"
LAYERS_COLOUR_BY = "layers.colour_by"
LAYERS_CLASSES = "layers.classes"
LAYERS_MAX_POINTS = "layers.max_points"
LAYERS_REQUESTED = "layers.requested"  # {(world, endpoint, job, layer, max_points, seed)}
LAYERS_POINT_PREFIX = "layers.points."  # + layer name: plotly selection event
LAYERS_HOVER_PREFIX = "layers.hover."  # + job id and layer name: hover-thumbnail component

# -- on-demand test ---------------------------------------------------------------------
ON_DEMAND_FORM = "on_demand.form"  # + "." + job id
ON_DEMAND_WINDOW = "on_demand.window"  # "Jobs" or "Steps"
ON_DEMAND_RESULT = "on_demand.result"  # (world, endpoint, JobResult) of the last test
ON_DEMAND_SAVED = "on_demand.saved"  # URI of the saved job, or the error met saving it

# -- incident report --------------------------------------------------------------------
REPORT_SCOPE = "report.scope"
REPORT_RANGE = "report.range"  # + "." + job id: select slider of the job range
REPORT_DOWNLOAD = "report.download"  # + "." + format
REPORT_VERDICT_FORM = "report.verdict_form"
REPORT_VERDICT_SENT = "report.verdict_sent"

_NON_WIDGET_DEFAULTS: dict[str, Any] = {
    OVERVIEW_GENERATION: 0,
    OVERVIEW_OPEN: None,
    SELECTED_JOB: None,
    SELECTED_FOR: None,
    HISTORY_GENERATION: 0,
    WORLD_ERROR: None,
    IDENTITY: None,
    LAYERS_REQUESTED: frozenset(),
    ON_DEMAND_RESULT: None,
    ON_DEMAND_SAVED: None,
    REPORT_VERDICT_SENT: None,
}

_WIDGET_DEFAULTS: dict[str, Any] = {
    HISTORY_SHOW_LAYERS: True,
    HISTORY_RANGE: "7 days",
    FLAGGED_PAGE: 1,
    FLAGGED_PAGE_SIZE: 10,
    FLAGGED_AMPLIFY: 0.0,
    LAYERS_COLOUR_BY: "natural / suspect",
    LAYERS_MAX_POINTS: 600,
    REPORT_SCOPE: "This job",
    ON_DEMAND_WINDOW: "Jobs",
}


def default_world_uri() -> str:
    """``LADIS_S3_URI`` when set, else the configured default world."""
    from ladis_core.config import world_uri

    return os.environ.get("LADIS_S3_URI", "").strip() or world_uri()


def init() -> None:
    """Set the shared defaults that are not set yet (once per run, by the entry script)."""
    st.session_state.setdefault(WORLD_URI, default_world_uri())
    for key, value in _NON_WIDGET_DEFAULTS.items():
        st.session_state.setdefault(key, value)


def init_page(prefix: str) -> None:
    """Set the defaults of the widgets of the page whose keys start with ``prefix.``."""
    for key, value in _WIDGET_DEFAULTS.items():
        if key.startswith(prefix + "."):
            st.session_state.setdefault(key, value)


def get(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def put(key: str, value: Any) -> None:
    st.session_state[key] = value


def world() -> str:
    """The data source of the sidebar, normalised (``s3://bucket/prefix/``)."""
    from ladis_core.errors import InputError
    from ladis_core.monitoring.world import normalize_world_uri

    raw = str(st.session_state.get(WORLD_URI) or default_world_uri())
    try:
        return normalize_world_uri(raw)
    except InputError:
        return raw


def endpoint() -> str | None:
    return st.session_state.get(ENDPOINT)


def selected_job(world_uri: str, endpoint_name: str) -> str | None:
    """The job picked on the history page, if it belongs to this world and endpoint."""
    if st.session_state.get(SELECTED_FOR) != (world_uri, endpoint_name):
        return None
    return st.session_state.get(SELECTED_JOB)


def select_job(world_uri: str, endpoint_name: str, job_id: str | None) -> None:
    """Make ``job_id`` the selected job for every page."""
    st.session_state[SELECTED_JOB] = job_id
    st.session_state[SELECTED_FOR] = (world_uri, endpoint_name)
