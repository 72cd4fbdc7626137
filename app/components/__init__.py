"""Reusable pieces of the dashboard: formatting, messages, KPI rows, job context, images,
t-SNE panels, charts and the fleet overview. Pages compose these (``from app import components as ui``) so
every page shows numbers, empty states and the selected job the same way. Nothing here
reads storage except through :mod:`app.data`.
"""

from app.components.charts import plot
from app.components.embedding import embedding_panels, hover_thumbnails, selected_thumbnails
from app.components.flagged import class_table, flagged_filters, flagged_table, share_panel
from app.components.format import (
    COLOURS,
    attack_label,
    class_label,
    fmt_p,
    fmt_rate,
    fmt_share,
    fmt_time,
    job_status,
    verdict_label,
)
from app.components.history import (
    history_kpis,
    jobs_table,
    on_history_chart,
    on_history_picker,
    on_history_table,
    selected_job_summary,
)
from app.components.images import IMAGE_PX, ORIGINAL_CAPTIONS, PAGE_CSS, flagged_card, png
from app.components.jobs import (
    HISTORY_RANGES,
    current_job,
    default_job,
    describe_job_option,
    in_range,
    job_options,
    job_table,
)
from app.components.layers import compute_tsne_views, tsne_controls
from app.components.messages import Kpi, empty_state, job_kpis, kpi_row, no_data
from app.components.on_demand import on_demand_form, on_demand_results
from app.components.overview import (
    STATE_LABELS,
    on_overview_table,
    open_pending_history,
    overview_frame,
    overview_kpis,
    overview_table,
)
from app.components.report import report_downloads, verdict_form
from app.text import literal

__all__ = [
    "COLOURS",
    "HISTORY_RANGES",
    "IMAGE_PX",
    "ORIGINAL_CAPTIONS",
    "PAGE_CSS",
    "STATE_LABELS",
    "Kpi",
    "attack_label",
    "class_label",
    "compute_tsne_views",
    "current_job",
    "default_job",
    "describe_job_option",
    "embedding_panels",
    "empty_state",
    "flagged_card",
    "class_table",
    "flagged_filters",
    "flagged_table",
    "fmt_p",
    "fmt_rate",
    "fmt_share",
    "fmt_time",
    "history_kpis",
    "hover_thumbnails",
    "in_range",
    "job_kpis",
    "job_options",
    "job_status",
    "job_table",
    "jobs_table",
    "kpi_row",
    "literal",
    "no_data",
    "on_demand_form",
    "on_demand_results",
    "on_history_chart",
    "on_history_picker",
    "on_history_table",
    "on_overview_table",
    "open_pending_history",
    "overview_frame",
    "overview_kpis",
    "overview_table",
    "plot",
    "selected_job_summary",
    "share_panel",
    "png",
    "report_downloads",
    "selected_thumbnails",
    "tsne_controls",
    "verdict_form",
    "verdict_label",
]
