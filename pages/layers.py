"""Layer explorer: per-layer detection rates and a t-SNE of reference vs inference."""

from __future__ import annotations

import streamlit as st

from app import components as ui
from app import data, state
from app.ui_errors import friendly_errors, show_error
from ladis_core import viz

st.title("Layer explorer")
state.init_page("layers")

COLOUR_CHOICES = ("natural / suspect", "predicted class")


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
        ui.empty_state(f"Job {job.job_id} tested no layers.")
        return
    chosen_before = st.session_state.get(state.LAYERS_CHOSEN)
    if chosen_before is None or not set(chosen_before) <= set(layers):
        # the penultimate layer (avgpool) usually suffices (SPEC section 1)
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
            format_func=lambda c: ui.class_label(job, c),
            placeholder="All classes",
        )
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
    if missing:
        label = f"Compute t-SNE ({len(missing)} layer{'s' if len(missing) > 1 else ''})"
        if not st.button(label, type="primary", icon=":material/scatter_plot:"):
            st.caption(
                "t-SNE takes a few seconds per layer; it runs only when asked and is kept "
                "for the next visit."
            )
            return
        bar = st.progress(0.0, text="Starting t-SNE…")
        failed = False
        for i, layer in enumerate(missing):

            def report(p, i=i, layer=layer):
                done = (i + p.fraction) / len(missing)
                bar.progress(done, text=f"{layer}: {p.message or p.stage}")

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

    # suspect: flagged by the job's per-input test (calibrated p-value ≤ α)
    alpha = job.settings.alpha
    suspect_steps = {s.step for s in job.top_samples if s.p_value is None or s.p_value <= alpha}
    for layer in chosen:
        view = data.cached_tsne(keys[layer])
        if view is None:
            continue
        st.markdown(f"**{layer}**")
        event = ui.plot(
            ui.embedding_panels(
                view,
                job,
                colour_by=colour_by or COLOUR_CHOICES[0],
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
