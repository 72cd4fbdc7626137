"""Plotly charts with the dashboard's defaults."""

from __future__ import annotations

import streamlit as st


def plot(fig, **kwargs):
    """``st.plotly_chart`` with the dashboard's defaults.

    A figure without a title would show "undefined" under Streamlit's theme, so an empty
    title text is set explicitly.
    """
    if not fig.layout.title.text:
        fig.update_layout(title_text="")
    kwargs.setdefault("config", {"displaylogo": False})
    return st.plotly_chart(fig, **kwargs)
