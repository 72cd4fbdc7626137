"""Helpers of the dashboard tests (driving the app with Streamlit's AppTest)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "app" / "streamlit_app.py"
APP_TIMEOUT_S = 120


def open_app(*, page: str | None = None):
    """Run the dashboard once (the history page, or ``page`` such as "flagged")."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    # caches are per process and keyed by the world URI, not by the credentials or the
    # endpoint each test sets: start every test from a cold dashboard
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ENTRY), default_timeout=APP_TIMEOUT_S)
    at.run()
    if page:
        at.switch_page(f"../pages/{page}.py").run()
    return at


def all_text(at) -> str:
    """Every piece of text the app rendered (for checks that something is not shown)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info",
                 "success", "exception", "text", "code"):
        for element in getattr(at, kind, []):
            parts.append(str(getattr(element, "value", "") or getattr(element, "message", "")))
    for metric in at.metric:
        parts.append(f"{metric.label} {metric.value}")
    return "\n".join(parts)


def by_label(widgets, label: str):
    """The one widget of ``widgets`` (e.g. ``at.number_input``) with this label."""
    found = [w for w in widgets if w.label == label]
    assert len(found) == 1, f"{len(found)} widgets labelled {label!r}"
    return found[0]
