"""Incident reports and verdicts against a real local S3 server (SeaweedFS), and the HTML
report opened in headless Chromium with the network blocked."""

from __future__ import annotations

import csv
import io
import json
import shutil
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from ladis_core import cli, layout, report, storage, triage
from ladis_core.results import IncidentRule, JobResult, JobSettings, LayerResult, TopSample
from ladis_core.s3server import LocalS3Server, find_free_port

pytestmark = pytest.mark.integration

EVIL = "<script>alert(1)</script>"
EVIL_ATTR = '"><img src=x onerror="window.__pwned=1">'
T0 = datetime(2026, 11, 23, tzinfo=UTC)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def _job(world: str, hour: int, rate: float, *, n_top: int = 30) -> JobResult:
    """A job as the monitoring job writes it; names from data are hostile on purpose."""
    rng = np.random.default_rng(hour)
    moment = T0 + timedelta(hours=hour)
    rule = IncidentRule()
    first = hour * 200
    return JobResult(
        job_id=layout.job_id_for(moment), endpoint=EVIL, scheduled_at=moment.isoformat(),
        started_at=moment.isoformat(), finished_at=(moment + timedelta(seconds=30)).isoformat(),
        reference=layout.reference_trial_uri(world, "digits"), inference=layout.inference_trial_uri(world, "digits"),
        first_step=first, last_step=first + 199, requests=200, detection_rate=rate, baseline_detection_rate=3.0,
        layers={
            EVIL_ATTR: LayerResult(rate, 3.0, 0.2, rng.random(50).tolist(), 512),
            "layer3": LayerResult(rate / 3, 2.0, 0.5, rng.random(50).tolist(), 256),
        },
        incident=rule.is_incident(rate, 3.0), incident_rule=rule, settings=JobSettings(seed=77, n_repeats=50),
        top_samples=[TopSample(step=first + i, score=5.0 - 0.1 * i, predicted_class=i % 2, p_value=0.002 * (i + 1))
                     for i in range(n_top)],
        class_names={"0": EVIL, "1": "one"}, ladis_version="test",
    )


def _store_jobs(world: str, jobs: list[JobResult]) -> str:
    monitoring = layout.monitoring_uri(world, "digits")
    for job in jobs:
        assert storage.write_json(layout.results_uri(monitoring, job.job_id), job.to_dict(), if_absent=True)
    return monitoring


def _assert_no_secrets(text: str, env: dict[str, str]) -> None:
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"):
        value = env.get(name)
        if value:
            assert value not in text, f"{name} leaked into a report"


# --------------------------------------------------------------------------- S3

def test_report_of_jobs_in_s3_in_every_format(s3_bucket, s3_env, tmp_path, capsys):
    world = s3_bucket.rstrip("/")
    jobs = [_job(world, h, 85.0 if h == 4 else 4.0) for h in range(8)]
    monitoring = _store_jobs(world, jobs)
    focus = jobs[4]
    triage.add_verdict(monitoring, focus.job_id, verdict="needs-review", analyst=EVIL, note="first look")
    triage.add_verdict(monitoring, focus.job_id, verdict="confirmed", analyst="Ana", note=f"PGD, {EVIL_ATTR}")
    job_uri = layout.results_uri(monitoring, focus.job_id)

    outputs = {}
    for fmt in ("html", "json", "csv"):
        out = tmp_path / f"incident.{fmt}"
        assert cli.main(["report", "--job", job_uri, "--format", fmt, "--out", str(out)]) == 0
        outputs[fmt] = out.read_text()
    logs = capsys.readouterr()
    assert "note: images of job" in logs.err  # the trial does not exist: said, not fatal

    doc = json.loads(outputs["json"])
    jsonschema.validate(doc, report.report_schema(), format_checker=jsonschema.FormatChecker())
    assert doc["jobs"][0]["result"] == json.loads(focus.to_json())
    assert [v["verdict"] for v in doc["jobs"][0]["verdicts"]] == ["needs-review", "confirmed"]
    assert doc["jobs"][0]["latest_verdict"] == "confirmed"
    assert [p["job_id"] for p in doc["timeline"]] == [j.job_id for j in jobs]
    assert doc["jobs"][0]["source"] == job_uri

    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert [int(r["step"]) for r in rows] == [s.step for s in focus.top_samples]
    assert {r["latest_verdict"] for r in rows} == {"confirmed"}

    html = outputs["html"]
    assert EVIL not in html and EVIL_ATTR not in html
    assert "images of job" in html and "could not be read" in html
    for text in outputs.values():
        _assert_no_secrets(text, s3_env)
    _assert_no_secrets(logs.out + logs.err, s3_env)

    # the same report written straight to S3, and a range report read from S3
    assert cli.main(["report", "--job", job_uri, "--out", f"{s3_bucket}reports/incident.json"]) == 0
    stored = json.loads(storage.read_bytes(f"{s3_bucket}reports/incident.json"))
    assert stored["jobs"][0]["result"]["job_id"] == focus.job_id
    out = tmp_path / "range.csv"
    assert cli.main(["report", "--monitoring", monitoring, "--from", jobs[2].job_id, "--to", jobs[5].job_id,
                     "--out", str(out), "--no-images"]) == 0
    assert len(out.read_text().splitlines()) == 1 + 4 * 30


def test_verdicts_survive_a_restart_of_the_s3_server(tmp_path, monkeypatch):
    # a server of our own (restarting the shared one would disturb other tests), with a
    # distinctive secret so that a leak into a report would show
    secret = f"sekrit-{uuid.uuid4().hex}"
    server = LocalS3Server(tmp_path / "s3", port=find_free_port(), access_key=f"key-{uuid.uuid4().hex[:12]}",
                           secret_key=secret, bucket="restart", die_with_parent=True)
    try:
        server.start(timeout_s=60)
        env = server.environment()
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        world = "s3://restart"
        job = _job(world, 0, 90.0)
        monitoring = _store_jobs(world, [job])
        given = [
            triage.add_verdict(monitoring, job.job_id, verdict=v, analyst=f"analyst {i}", note=f"note {i}")
            for i, v in enumerate(("needs-review", "confirmed", "dismissed"))
        ]
        results_before = storage.read_bytes(layout.results_uri(monitoring, job.job_id))

        assert server.stop() is True
        server.start(timeout_s=60)

        assert triage.list_verdicts(monitoring, job.job_id) == given
        assert triage.latest_verdict(monitoring, job.job_id) == given[-1]
        assert storage.read_bytes(layout.results_uri(monitoring, job.job_id)) == results_before
        data = report.gather_report_data([layout.job_uri(monitoring, job.job_id)])
        assert data.verdicts[job.job_id] == given
        rendered = {fmt: report.render(data, fmt) for fmt in report.FORMATS}
        assert "note 2" in rendered["html"] and "note 2" in rendered["json"]
        for text in rendered.values():
            assert secret not in text and env["AWS_ACCESS_KEY_ID"] not in text
    finally:
        server.stop()


# --------------------------------------------------------------------------- browser

@pytest.fixture
def offline_page():
    """Open a local HTML file in headless Chromium with every non-file/data request
    blocked; yields ``open(path) -> (page, events)``."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            def open_file(path: Path):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                events = {"blocked": [], "console": [], "errors": [], "dialogs": []}

                def route(r):
                    url = r.request.url
                    if url.startswith(("file://", "data:", "blob:")):
                        r.continue_()
                    else:
                        events["blocked"].append(url)
                        r.abort()

                page.route("**/*", route)
                page.on("console", lambda m: events["console"].append(f"{m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: events["errors"].append(str(e)))

                def dialog(d):
                    events["dialogs"].append(d.message)
                    d.dismiss()

                page.on("dialog", dialog)
                page.goto(path.resolve().as_uri(), wait_until="load")
                return page, events

            yield open_file
        finally:
            browser.close()


def _with_pictures(data: report.ReportData) -> report.ReportData:
    """Give the samples images and originals (until a real trial feeds them)."""
    rng = np.random.default_rng(5)
    samples = []
    for sample in data.samples:
        original = rng.random((3, 32, 32)).astype(np.float32)
        image = np.clip(original + rng.choice([-0.02, 0.02], size=original.shape), 0, 1).astype(np.float32)
        samples.append(replace(sample, image=image, original=original, original_kind=report.ORIGINAL_NEAREST,
                               original_source="reference step 3", original_class=1))
    return replace(data, samples=samples)


@pytest.mark.browser
def test_html_report_renders_offline_in_chromium(s3_bucket, tmp_path, offline_page):
    world = s3_bucket.rstrip("/")
    jobs = [_job(world, h, 85.0 if h in (3, 4) else 4.0) for h in range(8)]
    monitoring = _store_jobs(world, jobs)
    triage.add_verdict(monitoring, jobs[3].job_id, verdict="confirmed", analyst=EVIL_ATTR, note=EVIL)
    data = report.gather_report_data(
        [layout.job_uri(monitoring, jobs[3].job_id), layout.job_uri(monitoring, jobs[4].job_id)],
        include_images=False,
    )
    rng = np.random.default_rng(0)
    focus = data.jobs[0]
    embedding = report.ReportEmbedding(
        layer=EVIL, reference=rng.normal(size=(100, 2)), inference=rng.normal(size=(60, 2)),
        inference_steps=np.arange(focus.first_step, focus.first_step + 60),
    )
    path = tmp_path / "incident.html"
    path.write_text(report.render_html(replace(_with_pictures(data), embedding=embedding)))

    page, events = offline_page(path)
    page.wait_for_function(
        "[...document.querySelectorAll('div.chart')].every(d => d.querySelector('svg.main-svg'))",
        timeout=30_000,
    )
    charts = page.evaluate("""() => [...document.querySelectorAll('div.chart')].map(d => ({
        id: d.id, traces: d.querySelectorAll('g.trace, g.hm, image').length,
        failed: d.textContent.includes('could not be drawn')}))""")
    # timeline, heat map, 2 × (layer bars + p-values), t-SNE
    assert len(charts) == 7
    assert all(c["traces"] > 0 and not c["failed"] for c in charts), charts
    pictures = page.evaluate("""() => [...document.querySelectorAll('img.px')].map(
        i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0)""")
    assert len(pictures) == 3 * 60 and all(pictures)
    # hostile names are shown as text and never run
    body = page.inner_text("body")
    assert EVIL in body and EVIL_ATTR in body
    assert page.evaluate("window.__pwned === undefined")
    legend = page.evaluate("[...document.querySelectorAll('div.chart text')].map(t => t.textContent).join(' ')")
    assert EVIL_ATTR in legend  # chart labels too (plotly text is escaped, then shown literally)
    assert events == {"blocked": [], "console": [], "errors": [], "dialogs": []}
    # a click on a point of the timeline hands its job id to plotly's click event
    assert page.evaluate("document.getElementById('chart-1').data.some(t => t.customdata)")
    page.close()
