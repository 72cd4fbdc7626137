"""Incident reports: one job or a range of jobs as self-contained HTML, JSON or CSV.

A report is a pure function of a :class:`ReportData`. :func:`gather_report_data` is the
only part that reads storage (job results, verdicts, the inference trial's inputs,
provenance, natural originals); the renderers read nothing, so the dashboard can build a
``ReportData`` from what it already holds and offer the same files as downloads::

    data = gather_report_data(["s3://ladis/monitoring/digits/2026-11-23T17-00-00Z"])
    html = render_html(data)      # one file, opens offline (plotly.js and images inline)
    text = render_json(data)      # every result field, per-sample scores and provenance
    rows = render_csv(data)       # one row per flagged input

- ``_data``: :class:`ReportData`, :class:`ReportSample`, :class:`WindowScores`,
  :class:`ReportEmbedding` (plain objects, no I/O).
- ``_gather``: :func:`gather_report_data`, the one function that reads storage, and
  ``_pictures``: inputs from the trial, originals from provenance or nearest neighbours.
- ``_html`` + ``_template``: the HTML document (Jinja2, autoescaped; CSP-locked).
- ``_export``: JSON (validated by ``ladis_core/schemas/report.schema.json``) and CSV.
"""

from __future__ import annotations

from ladis_core.report._data import (
    ORIGINAL_NEAREST,
    ORIGINAL_RECORDED,
    ReportData,
    ReportEmbedding,
    ReportSample,
    WindowScores,
)
from ladis_core.report._export import (
    CSV_COLUMNS,
    REPORT_SCHEMA_VERSION,
    render_csv,
    render_json,
    report_dict,
    report_schema,
)
from ladis_core.report._gather import (
    gather_report_data,
    jobs_between,
    load_job,
    results_location,
    samples_of,
)
from ladis_core.report._html import render_html

FORMATS = ("html", "json", "csv")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}


def render(data: ReportData, fmt: str) -> str:
    """The report in format ``fmt`` (``"html"``, ``"json"`` or ``"csv"``)."""
    from ladis_core.errors import InputError

    renderers = {"html": render_html, "json": render_json, "csv": render_csv}
    if fmt not in renderers:
        raise InputError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    return renderers[fmt](data)


__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "MEDIA_TYPES",
    "ORIGINAL_NEAREST",
    "ORIGINAL_RECORDED",
    "REPORT_SCHEMA_VERSION",
    "ReportData",
    "ReportEmbedding",
    "ReportSample",
    "WindowScores",
    "gather_report_data",
    "jobs_between",
    "load_job",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "report_dict",
    "report_schema",
    "results_location",
    "samples_of",
]
