"""Images on the page: PNGs of inputs and the flagged-input card."""

from __future__ import annotations

import streamlit as st

from app.components.format import attack_label, class_label, fmt_p
from app.text import literal
from ladis_core.monitoring.results import JobResult

#: images are shown this wide; small inputs (32×32) are enlarged by the browser with
#: ``image-rendering: pixelated`` (see :data:`PAGE_CSS`), so they stay crisp and the
#: PNGs stay small (encoding a 4× enlarged copy took 40× longer: 9.5 ms against 0.23 ms)
IMAGE_PX = 128


#: page-wide style, added once by the entry script
PAGE_CSS = """<style>
[data-testid="stImage"] img { image-rendering: pixelated; }
</style>"""


def png(image, *, max_px: int = 256) -> bytes:
    """A (C, H, W) image in [0, 1] as PNG bytes (shrunk by block averaging when larger
    than ``max_px``, never enlarged: the browser does that)."""
    from ladis_core.viz import images

    return images.png_bytes(images.thumbnail(image, max_size=max_px))


ORIGINAL_CAPTIONS = {
    "recorded": "original (recorded)",
    "nearest-natural": "nearest natural neighbour",
}


def flagged_card(job: JobResult, sample, *, amplify: float | None) -> None:
    """One flagged input (a ``ReportSample``): facts, the input, its original and the
    amplified difference with its L∞ / L2 size."""
    from ladis_core.viz import images

    with st.container(border=True):
        facts, col_input, col_original, col_diff = st.columns([3, 2, 2, 2])
        facts.markdown(f"**#{sample.rank} · step {sample.step}**")
        facts.markdown(
            f"Predicted class: **{literal(class_label(job, sample.predicted_class))}**  \n"
            f"Score: **{sample.score:.3f}**"
            + (f"  \np-value: {fmt_p(sample.p_value)}" if sample.p_value is not None else "")
        )
        truth = attack_label(sample)
        if truth:
            label = (
                ""
                if sample.original_class is None
                else f", true class {class_label(job, sample.original_class)}"
            )
            facts.caption(f"Recorded provenance: {literal(truth + label)}")
        if sample.image is None:
            col_input.warning("Input not available", icon=":material/hide_image:")
            return
        col_input.image(png(sample.image), caption="input", width=IMAGE_PX)
        if sample.original is None:
            col_original.caption("No original: no provenance and no reference inputs.")
            return
        kind = ORIGINAL_CAPTIONS.get(sample.original_kind or "", sample.original_kind or "original")
        col_original.image(png(sample.original), caption=kind, width=IMAGE_PX)
        if sample.original_source:
            col_original.caption(literal(sample.original_source))
        rgb, factor = images.amplified_difference(sample.image, sample.original, amplify=amplify)
        col_diff.image(png(rgb), caption=f"difference × {factor:.0f}", width=IMAGE_PX)
        size = sample.size
        if size is not None:
            col_diff.caption(f"L∞ {size.linf:.4f} · L2 {size.l2:.3f}")
