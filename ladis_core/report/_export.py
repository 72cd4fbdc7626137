"""Machine-readable exports: JSON (every field, validated by a shipped JSON Schema) and CSV
(one row per flagged input)."""

from __future__ import annotations

import csv
import io
import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

from ladis_core.config import redact
from ladis_core.monitoring.jobs import job_time
from ladis_core.report._data import ReportData

#: version of the report JSON layout (``schemas/report.schema.json``)
REPORT_SCHEMA_VERSION = 1
REPORT_KIND = "ladis-incident-report"

CSV_COLUMNS = (
    "job_id",
    "endpoint",
    "scheduled_at",
    "job_detection_rate",
    "job_baseline_rate",
    "job_incident",
    "job_window_p_value",
    "job_crafted_share",
    "job_crafted_share_low",
    "job_crafted_share_high",
    "latest_verdict",
    "rank",
    "step",
    "score",
    "p_value",
    "predicted_class",
    "predicted_name",
    "attack",
    "epsilon",
    "true_label",
    "source_index",
    "original_kind",
    "original_source",
    "linf",
    "l2",
)


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :func:`render_json`'s output."""
    text = (
        resources.files("ladis_core").joinpath("schemas", "report.schema.json").read_text("utf-8")
    )
    return json.loads(text)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        return _finite(value.item())
    return value


def report_dict(data: ReportData) -> dict[str, Any]:
    """The report as plain JSON values (what :func:`render_json` writes)."""
    samples_by_job: dict[str, list[dict[str, Any]]] = {}
    for sample in sorted(data.samples, key=lambda s: (s.job_id, s.rank)):
        samples_by_job.setdefault(sample.job_id, []).append(sample.export_dict())
    jobs = []
    for job in data.jobs:
        latest = data.latest_verdict(job.job_id)
        jobs.append(
            {
                "result": job.to_dict(),
                "source": data.sources.get(job.job_id),
                "verdicts": [v.to_dict() for v in data.verdicts.get(job.job_id, [])],
                "latest_verdict": latest.verdict if latest else None,
                "samples": samples_by_job.get(job.job_id, []),
                "window_scores": window.to_dict()
                if (window := data.window_scores.get(job.job_id))
                else None,
            }
        )
    embedding = None
    if data.embedding is not None:
        emb = data.embedding
        embedding = {
            "layer": emb.layer,
            "method": emb.method,
            "details": dict(emb.details),
            "reference": emb.reference.tolist(),
            "inference": emb.inference.tolist(),
            "inference_steps": [int(s) for s in emb.inference_steps],
        }
    doc = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": REPORT_KIND,
        "title": data.display_title,
        "generated_at": data.generated_at,
        "ladis_version": data.ladis_version,
        "range": {"start": data.range_start, "end": data.range_end},
        "summary": {
            "jobs": len(data.jobs),
            "incidents": sum(1 for j in data.jobs if j.incident),
            "requests": sum(j.requests for j in data.jobs),
            "endpoints": data.endpoints,
            "flagged_inputs": len(data.samples),
        },
        "jobs": jobs,
        "timeline": [
            {
                "job_id": j.job_id,
                "endpoint": j.endpoint,
                "scheduled_at": j.scheduled_at,
                "status": j.status,
                "requests": j.requests,
                "detection_rate": j.detection_rate,
                "baseline_detection_rate": j.baseline_detection_rate,
                "alert_threshold": j.alert_threshold,
                "incident": j.incident,
            }
            for j in (data.timeline_jobs or data.jobs)
        ],
        "embedding": embedding,
        "images_included": data.images_included,
        "notes": [redact(n) for n in data.notes],
    }
    return _finite(doc)


def render_json(data: ReportData) -> str:
    """The report as a JSON document (str) that validates against :func:`report_schema`."""
    return json.dumps(report_dict(data), indent=2, allow_nan=False, ensure_ascii=False)


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is prefixed with '."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def render_csv(data: ReportData) -> str:
    """One row per flagged input of the report's jobs (columns :data:`CSV_COLUMNS`)."""
    by_id = {job.job_id: job for job in data.jobs}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    ordered = sorted(
        data.samples,
        key=lambda s: (
            str(job_time(by_id[s.job_id])) if s.job_id in by_id else "",
            s.job_id,
            s.rank,
        ),
    )
    for sample in ordered:
        job = by_id.get(sample.job_id)
        if job is None:
            continue
        latest = data.latest_verdict(job.job_id)
        record = dict(sample.provenance or {})
        size = sample.size
        share = None if job.window_test is None else job.window_test.share
        row = {
            "job_id": job.job_id,
            "endpoint": job.endpoint,
            "scheduled_at": job.scheduled_at,
            "job_detection_rate": job.detection_rate,
            "job_baseline_rate": job.baseline_detection_rate,
            "job_incident": job.incident,
            "job_window_p_value": job.window_p_value,
            "job_crafted_share": None if share is None else share.estimate,
            "job_crafted_share_low": None if share is None else share.low,
            "job_crafted_share_high": None if share is None else share.high,
            "latest_verdict": latest.verdict if latest else None,
            "rank": sample.rank,
            "step": sample.step,
            "score": sample.score,
            "p_value": sample.p_value,
            "predicted_class": sample.predicted_class,
            "predicted_name": sample.predicted_name,
            "attack": record.get("attack"),
            "epsilon": record.get("epsilon"),
            "true_label": record.get("true_label"),
            "source_index": record.get("source_index"),
            "original_kind": sample.original_kind,
            "original_source": sample.original_source,
            "linf": None if size is None else size.linf,
            "l2": None if size is None else size.l2,
        }
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()
