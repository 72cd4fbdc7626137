"""Pictures of results: plotly charts (:mod:`~ladis_core.viz.charts`,
:mod:`~ladis_core.viz.timeline`, :mod:`~ladis_core.viz.style`), image helpers
(:mod:`~ladis_core.viz.images`) and the t-SNE embedding (:mod:`~ladis_core.viz.embedding`).
Pure functions from result objects and arrays to figures and PNGs; nothing here reads
storage. The dashboard and the incident report draw with the same functions.
"""

from ladis_core.viz.charts import (
    embedding_figure,
    layer_bars_figure,
    layer_heatmap_figure,
    pvalue_histogram_figure,
)
from ladis_core.viz.shares import class_share_figure
from ladis_core.viz.style import (
    COLORS,
    COMBINED_LABEL,
    TEMPLATE,
    layer_order,
    plot_text,
)
from ladis_core.viz.timeline import timeline_figure

__all__ = [
    "COLORS",
    "COMBINED_LABEL",
    "TEMPLATE",
    "class_share_figure",
    "embedding_figure",
    "layer_bars_figure",
    "layer_heatmap_figure",
    "layer_order",
    "plot_text",
    "pvalue_histogram_figure",
    "timeline_figure",
]
