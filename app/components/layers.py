"""Pieces of the layer explorer: the t-SNE controls and computing the embeddings on request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from app import data, state
from app.components.format import class_label
from app.text import literal
from app.ui_errors import show_error
from ladis_core.monitoring.results import JobResult

COLOUR_CHOICES = ("natural / suspect", "predicted class")


def tsne_controls(job: JobResult, layers: Sequence[str]) -> tuple[list[str], int, str, list[int]]:
    """Layers, number of points, colouring and class filter chosen for the t-SNE."""
    chosen_before = st.session_state.get(state.LAYERS_CHOSEN)
    if chosen_before is None or not set(chosen_before) <= set(layers):
        # the penultimate layer (avgpool) usually suffices (docs/product.md, "Why layers")
        st.session_state[state.LAYERS_CHOSEN] = [n for n in layers if "avgpool" in n][:1] or layers[
            -1:
        ]
    classes = sorted(int(c) for c in job.class_counts) or list(range(len(job.class_names)))
    with st.container(border=True):
        top_left, top_right = st.columns([3, 1])
        chosen = top_left.multiselect("Layers", layers, key=state.LAYERS_CHOSEN)
        max_points = top_right.select_slider(
            "Points",
            [300, 600, 1000, 2000],
            key=state.LAYERS_MAX_POINTS,
            help="At most this many rows are embedded (subsampled deterministically); more is slower.",
        )
        bottom_left, bottom_right = st.columns([1, 1])
        colour_by = bottom_left.segmented_control(
            "Colour by", COLOUR_CHOICES, key=state.LAYERS_COLOUR_BY
        )
        class_filter = bottom_right.multiselect(
            "Classes",
            classes,
            key=f"{state.LAYERS_CLASSES}.{job.job_id}",
            format_func=lambda c: class_label(job, c),
            placeholder="All classes",
        )
    return chosen, max_points, colour_by or COLOUR_CHOICES[0], class_filter


def compute_tsne_views(
    missing: Sequence[str],
    keys: Mapping[str, tuple],
    world_uri: str,
    job: JobResult,
    *,
    max_points: int,
) -> bool:
    """Offer to compute the t-SNE of the ``missing`` layers; compute them with a progress
    bar when asked. Returns whether the page should go on drawing the embeddings (``False``
    while the analyst has not asked)."""
    seed = int(job.settings.seed or 0)
    label = f"Compute t-SNE ({len(missing)} layer{'s' if len(missing) > 1 else ''})"
    if not st.button(label, type="primary", icon=":material/scatter_plot:"):
        st.caption(
            "t-SNE takes a few seconds per layer; it runs only when asked and is kept "
            "for the next visit."
        )
        return False
    bar = st.progress(0.0, text="Starting t-SNE…")
    failed = False
    for i, layer in enumerate(missing):

        def report(p, i=i, layer=layer):
            done = (i + p.fraction) / len(missing)
            bar.progress(done, text=literal(f"{layer}: {p.message or p.stage}"))

        try:
            data.compute_tsne(
                keys[layer],
                world_uri,
                job,
                layer,
                max_points=max_points,
                seed=seed,
                progress=report,
            )
        except Exception as exc:  # noqa: BLE001 - one bad layer must not hide the others
            show_error(exc, action=f"computing the t-SNE of {layer}")
            failed = True
    bar.empty()
    if not failed:
        st.rerun()  # draw the page again without the button
    return True  # show the layers that did work
