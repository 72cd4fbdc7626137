"""The dashboard's pages, in navigation order: the entry script builds ``st.navigation``
from this registry and pages link to each other through it."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.navigation.page import StreamlitPage


@dataclass(frozen=True)
class PageInfo:
    """One page: its script (relative to ``app/``), title, icon and short link label."""

    path: str
    title: str
    icon: str
    link: str
    default: bool = False


OVERVIEW = PageInfo(
    "../pages/overview.py", "Fleet overview", ":material/dashboard:", "Fleet overview", default=True
)
HISTORY = PageInfo("../pages/history.py", "Monitoring history", ":material/timeline:", "History")
FLAGGED = PageInfo(
    "../pages/flagged.py", "Flagged inputs", ":material/image_search:", "Flagged inputs"
)
LAYERS = PageInfo(
    "../pages/layers.py", "Layer explorer", ":material/scatter_plot:", "Layer explorer"
)
ON_DEMAND = PageInfo(
    "../pages/on_demand.py", "On-demand test", ":material/science:", "Re-test on demand"
)
REPORT = PageInfo(
    "../pages/report.py", "Incident report", ":material/description:", "Incident report"
)

PAGES: tuple[PageInfo, ...] = (OVERVIEW, HISTORY, FLAGGED, LAYERS, ON_DEMAND, REPORT)


def navigation() -> StreamlitPage:
    """``st.navigation`` over :data:`PAGES` (the caller runs the chosen page)."""
    return st.navigation(
        [st.Page(p.path, title=p.title, icon=p.icon, default=p.default) for p in PAGES]
    )


def page_links(pages: tuple[PageInfo, ...]) -> None:
    """A row of links to ``pages``."""
    for column, page in zip(st.columns(len(pages)), pages, strict=True):
        column.page_link(page.path, label=page.link, icon=page.icon)
