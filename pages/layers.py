"""Layer explorer: per-layer detection rates and a t-SNE of reference vs inference."""

from __future__ import annotations

import streamlit as st

from app import components as ui
from app import data, state
from app.ui_errors import friendly_errors
from ladis_core import viz

st.title("Layer explorer")
state.init_page("layers")


def main() -> None:
    world_uri, endpoint = state.world(), state.endpoint()
    job = ui.current_job(world_uri, endpoint)
    if job is None:
        return

    st.subheader("Detection rate per layer")
    ui.plot(viz.layer_bars_figure(job))

    st.subheader("t-SNE of the layer representations")
    st.caption(
        "One joint 2-D embedding of the natural reference rows and the job's inference rows, "
        "drawn side by side. A visual aid only: detection comes from the two-sample tests above."
    )
    layers = data.job_layers(job)
    if not layers:
        ui.empty_state(f"Job {ui.literal(job.job_id)} tested no layers.")
        return
    chosen, max_points, colour_by, class_filter = ui.tsne_controls(job, layers)
    if not chosen:
        ui.empty_state("Choose at least one layer.")
        return
    seed = int(job.settings.seed or 0)
    keys = {
        layer: data.tsne_key(
            world_uri, job.endpoint or endpoint, job.job_id, layer, max_points, seed
        )
        for layer in chosen
    }
    missing = [layer for layer in chosen if data.cached_tsne(keys[layer]) is None]
    if missing and not ui.compute_tsne_views(missing, keys, world_uri, job, max_points=max_points):
        return
    # suspect: flagged by the job's per-input test (calibrated p-value ≤ α)
    alpha = job.settings.alpha
    suspect_steps = {s.step for s in job.top_samples if s.p_value is None or s.p_value <= alpha}
    for layer in chosen:
        view = data.cached_tsne(keys[layer])
        if view is None:
            continue
        st.markdown(f"**{ui.literal(layer)}**")
        event = ui.plot(
            ui.embedding_panels(
                view,
                job,
                colour_by=colour_by,
                classes=class_filter,
                suspect_steps=suspect_steps,
            ),
            key=f"{state.LAYERS_POINT_PREFIX}{job.job_id}.{layer}",
            on_select="rerun",
            selection_mode=("points", "box", "lasso"),
        )
        ui.hover_thumbnails(view, key=f"{state.LAYERS_HOVER_PREFIX}{job.job_id}.{layer}")
        ui.selected_thumbnails(world_uri, job, view, event)


with friendly_errors("exploring the layers"):
    main()
