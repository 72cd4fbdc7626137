"""The self-contained HTML report: one file, no network, charts and images inline.

plotly.js is inlined once from the installed plotly package; each chart's figure JSON
sits in a ``<script type="application/json">`` block that one small script hands to
``Plotly.newPlot``. Images are PNG data URIs. Everything from data is escaped by the
template engine (Jinja2 with autoescape), chart labels by :func:`ladis_core.viz.plot_text`,
and a Content-Security-Policy lets only this file's own scripts run and loads nothing
from the network, as a second line of defence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go
from jinja2 import Environment, StrictUndefined, Template
from markupsafe import Markup

from ladis_core import viz
from ladis_core.config import redact
from ladis_core.monitoring.results import STATUS_OK, JobResult
from ladis_core.report._data import ORIGINAL_NEAREST, ORIGINAL_RECORDED, ReportData, ReportSample
from ladis_core.report._export import render_json
from ladis_core.report._template import TEMPLATE
from ladis_core.viz import images

#: images larger than this (longer side, pixels) are shrunk, which keeps 100 samples
#: well under 10 MB for the whole report, beside the ~4.8 MB of plotly.js
DEFAULT_IMAGE_MAX_PX = 64
#: per-job chart blocks (layer bars + p-values) drawn at most
MAX_JOB_DETAILS = 6


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    # "</script" cannot occur inside a script element; plotly.min.js has none, but be sure
    return get_plotlyjs().replace("</script", "<\\/script")


@lru_cache(maxsize=1)
def _template() -> Template:
    env = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{v:.1f}%"
    env.filters["num"] = _num
    env.filters["share"] = _share_range
    return env.from_string(TEMPLATE)


def _share_range(job: JobResult) -> str:
    """The crafted-share interval of a job, ``"14–31 %"`` (``"n/a"`` without a window test)."""
    test = job.window_test
    if test is None or not test.share.n_inputs:
        return "n/a"
    return f"{100 * test.share.low:.0f}–{100 * test.share.high:.0f} %"


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


class _Charts:
    """Collects figures as (div id, JSON) pairs for the template."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, fig: go.Figure) -> Markup:
        chart_id = f"chart-{len(self.items) + 1}"
        # plotly's JSON escapes "<" as \u003c; the replace makes "</script" impossible anyway
        payload = fig.to_json(engine="json").replace("</", "<\\/")
        self.items.append((chart_id, payload))
        return Markup('<div class="chart" id="{}"></div>').format(chart_id)


def _class_label(job: JobResult, cls: int | None, name: str | None = None) -> str:
    if cls is None:
        return "n/a"
    name = name or job.class_names.get(str(cls))
    return f"{cls} ({name})" if name else str(cls)


def _sample_view(sample: ReportSample, job: JobResult, *, image_max_px: int) -> dict[str, Any]:
    view: dict[str, Any] = {
        "sample": sample,
        "predicted": _class_label(job, sample.predicted_class, sample.predicted_name),
        "image": None,
        "original": None,
        "difference": None,
        "amplify": None,
        "size": sample.size,
        "original_label": None,
        "provenance": None,
    }
    if sample.image is not None:
        view["image"] = images.image_data_uri(sample.image, max_size=image_max_px)
    if sample.original is not None:
        view["original"] = images.image_data_uri(sample.original, max_size=image_max_px)
        if sample.image is not None and sample.image.shape == sample.original.shape:
            rgb, factor = images.amplified_difference(sample.image, sample.original)
            view["difference"] = images.image_data_uri(rgb, max_size=image_max_px)
            view["amplify"] = factor
        kind = {
            ORIGINAL_RECORDED: "recorded original",
            ORIGINAL_NEAREST: "nearest natural neighbour (not the recorded original)",
        }.get(sample.original_kind or "", sample.original_kind or "")
        which = "predicted class" if sample.original_kind == ORIGINAL_NEAREST else "class"
        view["original_label"] = (
            f"{kind}: {sample.original_source}, {which} {_class_label(job, sample.original_class)}"
        )
    record = sample.provenance
    if record is not None:
        attack = record.get("attack", "?")
        eps = record.get("epsilon")
        view["provenance"] = f"{attack}" + (
            f", ε = {eps:g}" if isinstance(eps, int | float) and attack != "none" else ""
        )
        if "true_label" in record:
            view["provenance"] += f"; true class {_class_label(job, record.get('true_label'))}"
    return view


def _settings_groups(jobs: list[JobResult]) -> list[dict[str, Any]]:
    """Jobs grouped by identical settings, rule, reference and methods."""
    groups: dict[str, dict[str, Any]] = {}
    for job in jobs:
        rows = {
            **{k: v for k, v in asdict(job.settings).items()},
            "incident rule": job.incident_rule.describe(),
            "combined method": job.combined_method,
            "score method": job.score_method,
            "reference trial": job.reference,
            "inference trial": job.inference,
            "source": job.source,
            "LADIS version": job.ladis_version or "n/a",
        }
        key = json.dumps(rows, sort_keys=True, default=str)
        group = groups.setdefault(key, {"rows": rows, "jobs": []})
        group["jobs"].append(job)
    out = []
    for group in groups.values():
        rows = []
        for name, value in group["rows"].items():
            if isinstance(value, list):
                value = ", ".join(map(str, value)) or "(default)"
            rows.append((name.replace("_", " "), "none" if value is None else str(value)))
        out.append(
            {
                "jobs": group["jobs"],
                "rows": rows,
                "json": json.dumps(group["rows"], indent=2, default=str),
            }
        )
    return out


def render_html(data: ReportData, *, image_max_px: int = DEFAULT_IMAGE_MAX_PX) -> str:
    """The report as one self-contained HTML document (str). Pure: reads nothing."""
    figures = _Charts()
    jobs = data.jobs
    by_id = {job.job_id: job for job in jobs}
    selected = jobs[0].job_id if len(jobs) == 1 else None
    timeline = figures.add(
        viz.timeline_figure(data.timeline_jobs or jobs, selected_job_id=selected)
    )
    heatmap = (
        figures.add(viz.layer_heatmap_figure(data.timeline_jobs or jobs))
        if len(data.timeline_jobs or jobs) > 1
        else None
    )

    detailed = [j for j in jobs if j.incident] or list(jobs)
    detailed = detailed[:MAX_JOB_DETAILS]
    job_details = []
    for job in detailed:
        p_values = {name: layer.p_values for name, layer in job.layers.items() if layer.p_values}
        job_details.append(
            {
                "job": job,
                "bars": figures.add(viz.layer_bars_figure(job)),
                "pvalues": figures.add(
                    viz.pvalue_histogram_figure(p_values, alpha=job.settings.alpha)
                )
                if p_values
                else None,
                "share_text": None
                if job.window_test is None
                else job.window_test.share.describe("this window's requests"),
                "classes": figures.add(viz.class_share_figure(job))
                if job.window_test is not None and job.window_test.classes
                else None,
            }
        )

    samples = [
        _sample_view(s, by_id[s.job_id], image_max_px=image_max_px)
        for s in data.html_samples
        if s.job_id in by_id
    ]
    embedding = None
    if data.embedding is not None:
        emb = data.embedding
        flagged = {int(s.step) for s in data.samples}
        steps = [int(step) for step in emb.inference_steps]
        embedding = {
            "data": emb,
            "chart": figures.add(
                viz.embedding_figure(
                    emb.reference,
                    emb.inference,
                    suspect=[step in flagged for step in steps],
                    inference_labels=[f"step {step}" for step in steps],
                )
            ),
        }

    verdict_rows = [(job, v) for job in jobs for v in data.verdicts.get(job.job_id, [])]
    context = {
        "data": data,
        "title": data.display_title,
        "jobs": jobs,
        "summary": {
            "incidents": sum(1 for j in jobs if j.incident),
            "requests": sum(j.requests for j in jobs),
            "untested": sum(1 for j in jobs if j.status != STATUS_OK),
        },
        "latest": {job.job_id: data.latest_verdict(job.job_id) for job in jobs},
        "timeline": timeline,
        "timeline_count": len(data.timeline_jobs or jobs),
        "heatmap": heatmap,
        "job_details": job_details,
        "more_details": max(0, len([j for j in jobs if j.incident] or jobs) - MAX_JOB_DETAILS),
        "samples": samples,
        "samples_total": len(data.samples),
        "embedding": embedding,
        "settings": _settings_groups(list(jobs)),
        "verdict_rows": verdict_rows,
        "notes": [redact(n) for n in data.notes],
        "sources": sorted(data.sources.items()),
        "charts": figures.items,
        "status_ok": STATUS_OK,
    }
    # a nonce derived from the content: only this file's own scripts may run (CSP), and the
    # output stays a deterministic function of the data
    digest = hashlib.sha256()
    for chart_id, payload in figures.items:
        digest.update(chart_id.encode() + payload.encode())
    digest.update(render_json(data).encode())
    context["nonce"] = digest.hexdigest()[:32]
    context["plotly_js"] = Markup(_plotly_js())
    return _template().render(**context)
