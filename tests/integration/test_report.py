"""Incident reports and verdicts against a real local S3 server (SeaweedFS), and the HTML
report opened in headless Chromium with the network blocked."""

from __future__ import annotations

import atexit
import csv
import io
import json
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from ladis_core import cli, report, store
from ladis_core.devtools.s3server import LocalS3Server, find_free_port
from ladis_core.monitoring import triage
from ladis_core.monitoring.results import (
    JobResult,
    JobSettings,
    LayerResult,
    TopSample,
)
from ladis_core.store import layout
from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS
from tests.support.factories import make_job

pytestmark = pytest.mark.integration

EVIL = "<script>alert(1)</script>"
EVIL_ATTR = '"><img src=x onerror="window.__pwned=1">'
T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _job(world: str, hour: int, rate: float, *, n_top: int = 30) -> JobResult:
    """A job as the monitoring job writes it; names from data are hostile on purpose."""
    rng = np.random.default_rng(hour)
    first = hour * 200
    return make_job(
        hour,
        rate,
        baseline=3.0,
        endpoint=EVIL,
        reference=layout.reference_trial_uri(world, "digits"),
        inference=layout.inference_trial_uri(world, "digits"),
        requests=200,
        layers={
            EVIL_ATTR: LayerResult(rate, 3.0, 0.2, rng.random(50).tolist(), 512),
            "layer3": LayerResult(rate / 3, 2.0, 0.5, rng.random(50).tolist(), 256),
        },
        settings=JobSettings(seed=77, n_repeats=50),
        top_samples=[
            TopSample(
                step=first + i, score=5.0 - 0.1 * i, predicted_class=i % 2, p_value=0.002 * (i + 1)
            )
            for i in range(n_top)
        ],
        class_names={"0": EVIL, "1": "one"},
        ladis_version="test",
    )


def _store_jobs(world: str, jobs: list[JobResult]) -> str:
    monitoring = layout.monitoring_uri(world, "digits")
    for job in jobs:
        assert store.write_json(
            layout.results_uri(monitoring, job.job_id), job.to_dict(), if_absent=True
        )
    return monitoring


def _assert_no_secrets(text: str, env: dict[str, str]) -> None:
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"):
        value = env.get(name)
        if value:
            assert value not in text, f"{name} leaked into a report"


# --------------------------------------------------------------------------- a real world

SIZE, PER_HOUR, EPSILON = 16, 40, 0.3
LAYERS = ["avgpool_output_0", "layer3.1_output_0"]
SMALL = JobSettings(n_samples=20, n_repeats=20, n_permutations=200, seed=0)


@dataclass(frozen=True)
class LocalCapture:
    """Trials written by the real smdebug hook for a seeded ResNet18 (random weights:
    training is not what is tested): 160 natural reference digits (EVAL, inputs saved), and
    PREDICT requests: hour 0 natural, hour 1 FGSM (ε = 0.3). ``natural`` (N, C, H, W) are
    the images the requests came from (``natural.npz``), ``provenance`` one record per step."""

    reference: Path
    inference: Path
    natural: np.ndarray
    labels: np.ndarray
    provenance: list[dict]
    #: the images of the requests, (2 * PER_HOUR, C, H, W)
    requests: np.ndarray


def _write_trial(model, out_dir: Path, *, eval_batches=(), predict=()) -> None:
    import torch
    from smdebug import modes
    from smdebug.pytorch import Hook, SaveConfig

    hook = Hook(
        out_dir=str(out_dir),
        save_config=SaveConfig(save_interval=1),
        save_all=False,
        include_regex=[
            ".*avgpool_output",
            "ResNet_output_0",
            r"layer3\.1_output_0",
            "ResNet_input_0",
        ],
    )
    hook.register_module(model)
    try:
        with torch.no_grad():
            if len(eval_batches):
                hook.set_mode(modes.EVAL)
                for batch in eval_batches:
                    model(torch.from_numpy(batch))
            if len(predict):
                hook.set_mode(modes.PREDICT)
                for image in predict:
                    model(torch.from_numpy(image[None]))
    finally:
        hook.close()
        # close() does not unregister smdebug's atexit clean-up, which would run again at
        # exit and log "Skipping close of ... .tmp" into streams pytest has closed
        atexit.unregister(hook._cleanup)


@pytest.fixture(scope="module")
def local_capture(tmp_path_factory) -> LocalCapture:
    import torch

    from ladis_core.model import attacks
    from ladis_core.model.data import digits_dataset
    from ladis_core.model.spec import ModelSpec, build_model

    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    data = digits_dataset(size=SIZE, channels=3)
    with torch.random.fork_rng():  # seeds only this block
        torch.manual_seed(0)
        model = build_model(
            ModelSpec(input_shape=(3, SIZE, SIZE), class_names=list("0123456789"))
        ).eval()
    order = np.random.default_rng(0).permutation(len(data))
    reference_rows, natural_rows = order[:160], order[160 : 160 + 2 * PER_HOUR]
    natural = data.images[natural_rows].astype(np.float32)
    labels = data.labels[natural_rows].astype(np.int64)
    attacked = attacks.attack(
        model, natural[PER_HOUR:], labels[PER_HOUR:], method="fgsm", epsilon=EPSILON
    ).images
    requests = [*natural[:PER_HOUR], *attacked.astype(np.float32)]
    provenance = [
        {
            "step": step,
            "source_index": step,
            "true_label": int(labels[step]),
            "attack": "none" if step < PER_HOUR else "fgsm",
            "epsilon": 0.0 if step < PER_HOUR else EPSILON,
            "hour": layout.job_id_for(T0 + timedelta(hours=step // PER_HOUR)),
        }
        for step in range(2 * PER_HOUR)
    ]
    root = tmp_path_factory.mktemp("capture")
    batches = [
        data.images[reference_rows[i : i + 40]].astype(np.float32) for i in range(0, 160, 40)
    ]
    _write_trial(model, root / "reference", eval_batches=batches)
    _write_trial(model, root / "inference", predict=requests)
    return LocalCapture(
        root / "reference", root / "inference", natural, labels, provenance, np.stack(requests)
    )


def _step_of(relative: str) -> int | None:
    head = relative.rsplit("/", 1)[-1].split("_", 1)[0]
    return int(head) if head.isdigit() and relative.startswith(("events/", "index/")) else None


def _upload(local: Path, uri: str, *, steps: range | None = None, with_rest: bool = True) -> None:
    """Copy a local trial (or some of its steps) to ``uri`` in capture's order: event
    files, then index files, then the rest."""
    chosen = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        relative = path.relative_to(local).as_posix()
        step = _step_of(relative)
        if (step is None and with_rest) or (step is not None and (steps is None or step in steps)):
            chosen.append((relative, path))
    for prefix in ("events/", "index/", ""):
        for relative, path in chosen:
            if (
                relative.startswith(prefix)
                if prefix
                else not relative.startswith(("events/", "index/"))
            ):
                store.write_bytes(f"{uri}/{relative}", path.read_bytes())


def _publish_and_monitor(
    world: str, capture: LocalCapture, cache_dir: Path, *, provenance_steps=None
) -> list[JobResult]:
    """Put the capture in ``world`` and run the real monitoring job once per hour."""
    from ladis_core import monitoring as monitor

    buffer = io.BytesIO()
    np.savez(
        buffer,
        images=capture.natural,
        labels=capture.labels,
        class_names=np.array(list("0123456789")),
    )
    store.write_bytes(layout.dataset_uri(world, "digits"), buffer.getvalue())
    records = [
        r for r in capture.provenance if provenance_steps is None or r["step"] in provenance_steps
    ]
    store.write_bytes(
        layout.join(layout.provenance_uri(world, "digits"), "part-000.jsonl"),
        "".join(json.dumps(r) + "\n" for r in records).encode(),
    )
    reference, inference = (
        layout.reference_trial_uri(world, "digits"),
        layout.inference_trial_uri(world, "digits"),
    )
    _upload(capture.reference, reference)
    jobs = []
    for hour in range(2):
        _upload(
            capture.inference,
            inference,
            steps=range(hour * PER_HOUR, (hour + 1) * PER_HOUR),
            with_rest=hour == 0,
        )
        jobs.append(
            monitor.run_job(
                reference=reference,
                inference=inference,
                output=layout.monitoring_uri(world, "digits"),
                at=T0 + timedelta(hours=hour + 1),
                layers=LAYERS,
                settings=SMALL,
                endpoint="digits",
                cache_dir=str(cache_dir),
            )
        )
    return jobs


@dataclass(frozen=True)
class RealWorld:
    uri: str
    monitoring: str
    calm: JobResult
    attacked: JobResult
    #: steps with a provenance record (the rest of the attacked hour has none)
    recorded: range
    cache_dir: Path


@pytest.fixture(scope="module")
def real_world(s3_server, local_capture, tmp_path_factory) -> RealWorld:
    """The capture published in a bucket of its own, and the real monitoring job run on
    each of its two hours (once per module: tests only read it)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
            patch.delenv(name, raising=False)
        for name, value in s3_server.environment().items():
            patch.setenv(name, value)
        world = s3_server.create_bucket(f"report-{uuid.uuid4().hex[:12]}").rstrip("/")
        cache_dir = tmp_path_factory.mktemp("trial-cache")
        # provenance for the first half of the attacked hour only: the rest fall back to
        # the nearest natural neighbour in the reference trial
        recorded = range(0, PER_HOUR + PER_HOUR // 2)
        calm, attacked = _publish_and_monitor(
            world, local_capture, cache_dir, provenance_steps=recorded
        )
        monitoring = layout.monitoring_uri(world, "digits")
        triage.add_verdict(
            monitoring, attacked.job_id, verdict="confirmed", analyst="Ana", note="FGSM burst"
        )
    return RealWorld(world, monitoring, calm, attacked, recorded, cache_dir)


def test_report_of_a_real_monitoring_job_shows_the_real_inputs_and_originals(
    real_world, local_capture, s3_env
):
    calm, attacked, recorded = real_world.calm, real_world.attacked, real_world.recorded
    assert attacked.incident and not calm.incident, (calm.detection_rate, attacked.detection_rate)
    data = report.gather_report_data(
        [layout.job_uri(real_world.monitoring, attacked.job_id)],
        cache_dir=str(real_world.cache_dir),
    )
    assert data.notes == []
    assert [j.job_id for j in data.timeline_jobs] == [calm.job_id, attacked.job_id]
    assert len(data.samples) == len(attacked.top_samples) == PER_HOUR
    assert data.latest_verdict(attacked.job_id).note == "FGSM burst"
    kinds = {report.ORIGINAL_RECORDED: 0, report.ORIGINAL_NEAREST: 0}
    for sample in data.samples:
        assert sample.image is not None and sample.image.shape == (3, SIZE, SIZE)
        assert np.array_equal(sample.image, local_capture.requests[sample.step])  # what was served
        kinds[sample.original_kind] += 1
        if sample.step in recorded:
            # the recorded original is exactly the natural image the request came from,
            # and the FGSM perturbation has L-infinity size epsilon (up to clipping)
            assert sample.original_kind == report.ORIGINAL_RECORDED
            assert np.array_equal(
                sample.original, local_capture.natural[sample.provenance["source_index"]]
            )
            assert sample.provenance["attack"] == "fgsm"
            assert sample.size.linf == pytest.approx(EPSILON, abs=1e-5)
        else:
            assert sample.provenance is None
            assert sample.original_kind == report.ORIGINAL_NEAREST
            assert sample.original_source.startswith("reference row")
    assert (
        kinds[report.ORIGINAL_RECORDED] == PER_HOUR // 2
        and kinds[report.ORIGINAL_NEAREST] == PER_HOUR // 2
    )
    assert data.window_scores[attacked.job_id].steps.tolist() == list(range(PER_HOUR, 2 * PER_HOUR))

    doc = json.loads(report.render_json(data))
    jsonschema.validate(doc, report.report_schema(), format_checker=jsonschema.FormatChecker())
    assert doc["jobs"][0]["result"] == json.loads(attacked.to_json())
    assert sum(1 for s in doc["jobs"][0]["samples"] if s["provenance"]) == PER_HOUR // 2
    rows = list(csv.DictReader(io.StringIO(report.render_csv(data))))
    assert len(rows) == PER_HOUR and {r["attack"] for r in rows} == {"fgsm", ""}
    html = report.render_html(data)
    assert html.count('class="px sample-image"') == PER_HOUR
    assert html.count("nearest natural neighbour (not the recorded original)") == PER_HOUR // 2


def test_a_deleted_trial_leaves_scores_and_provenance_in_the_report(
    real_world, s3_bucket, tmp_path
):
    """The job's results, scores, provenance and natural set without its trials, as after
    the trials were deleted: the report still lists every flagged input, says why there
    are no pictures, and the dashboard's export works the same."""
    world = s3_bucket.rstrip("/")
    moved = replace(
        real_world.attacked,
        reference=layout.reference_trial_uri(world, "digits"),
        inference=layout.inference_trial_uri(world, "digits"),
    )
    monitoring = layout.monitoring_uri(world, "digits")
    store.write_json(layout.results_uri(monitoring, moved.job_id), moved.to_dict())
    for relative in (
        f"monitoring/digits/{moved.job_id}/scores.json",
        "datasets/digits/natural.npz",
        "trials/digits/provenance/part-000.jsonl",
    ):
        store.write_bytes(f"{world}/{relative}", store.read_bytes(f"{real_world.uri}/{relative}"))

    gone = report.gather_report_data(
        [layout.job_uri(monitoring, moved.job_id)], cache_dir=str(tmp_path / "cache")
    )
    assert len(gone.samples) == PER_HOUR and all(s.image is None for s in gone.samples)
    assert all((s.provenance is not None) == (s.step in real_world.recorded) for s in gone.samples)
    assert any("could not be read" in note and moved.inference in note for note in gone.notes)
    html = report.render_html(gone)
    assert "could not be read" in html and "data:image/png" not in html.replace(_plotly_js(), "")
    jsonschema.validate(json.loads(report.render_json(gone)), report.report_schema())


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


# --------------------------------------------------------------------------- S3


def test_report_of_jobs_in_s3_in_every_format(s3_bucket, s3_env, tmp_path, capsys):
    world = s3_bucket.rstrip("/")
    jobs = [_job(world, h, 85.0 if h == 4 else 4.0) for h in range(8)]
    monitoring = _store_jobs(world, jobs)
    focus = jobs[4]
    triage.add_verdict(
        monitoring, focus.job_id, verdict="needs-review", analyst=EVIL, note="first look"
    )
    triage.add_verdict(
        monitoring, focus.job_id, verdict="confirmed", analyst="Ana", note=f"PGD, {EVIL_ATTR}"
    )
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
    stored = json.loads(store.read_bytes(f"{s3_bucket}reports/incident.json"))
    assert stored["jobs"][0]["result"]["job_id"] == focus.job_id
    out = tmp_path / "range.csv"
    assert (
        cli.main(
            [
                "report",
                "--monitoring",
                monitoring,
                "--from",
                jobs[2].job_id,
                "--to",
                jobs[5].job_id,
                "--out",
                str(out),
                "--no-images",
            ]
        )
        == 0
    )
    assert len(out.read_text().splitlines()) == 1 + 4 * 30


def test_verdicts_survive_a_restart_of_the_s3_server(tmp_path, monkeypatch):
    # a server of our own (restarting the shared one would disturb other tests), with a
    # distinctive secret so that a leak into a report would show
    secret = f"sekrit-{uuid.uuid4().hex}"
    server = LocalS3Server(
        tmp_path / "s3",
        port=find_free_port(),
        access_key=f"key-{uuid.uuid4().hex[:12]}",
        secret_key=secret,
        bucket="restart",
        die_with_parent=True,
    )
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
            triage.add_verdict(
                monitoring, job.job_id, verdict=v, analyst=f"analyst {i}", note=f"note {i}"
            )
            for i, v in enumerate(("needs-review", "confirmed", "dismissed"))
        ]
        results_before = store.read_bytes(layout.results_uri(monitoring, job.job_id))

        assert server.stop() is True
        server.start(timeout_s=60)

        assert triage.list_verdicts(monitoring, job.job_id) == given
        assert triage.latest_verdict(monitoring, job.job_id) == given[-1]
        assert store.read_bytes(layout.results_uri(monitoring, job.job_id)) == results_before
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
                page.on(
                    "console",
                    lambda m: (
                        events["console"].append(f"{m.type}: {m.text}")
                        if m.type in ("error", "warning")
                        else None
                    ),
                )
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
        image = np.clip(original + rng.choice([-0.02, 0.02], size=original.shape), 0, 1).astype(
            np.float32
        )
        samples.append(
            replace(
                sample,
                image=image,
                original=original,
                original_kind=report.ORIGINAL_NEAREST,
                original_source="reference step 3",
                original_class=1,
            )
        )
    return replace(data, samples=samples)


@pytest.mark.browser
def test_html_report_renders_offline_in_chromium(s3_bucket, tmp_path, offline_page):
    world = s3_bucket.rstrip("/")
    jobs = [_job(world, h, 85.0 if h in (3, 4) else 4.0) for h in range(8)]
    monitoring = _store_jobs(world, jobs)
    triage.add_verdict(
        monitoring, jobs[3].job_id, verdict="confirmed", analyst=EVIL_ATTR, note=EVIL
    )
    data = report.gather_report_data(
        [layout.job_uri(monitoring, jobs[3].job_id), layout.job_uri(monitoring, jobs[4].job_id)],
        include_images=False,
    )
    rng = np.random.default_rng(0)
    focus = data.jobs[0]
    embedding = report.ReportEmbedding(
        layer=EVIL,
        reference=rng.normal(size=(100, 2)),
        inference=rng.normal(size=(60, 2)),
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
    legend = page.evaluate(
        "[...document.querySelectorAll('div.chart text')].map(t => t.textContent).join(' ')"
    )
    assert EVIL_ATTR in legend  # chart labels too (plotly text is escaped, then shown literally)
    assert events == {"blocked": [], "console": [], "errors": [], "dialogs": []}
    # a click on a point of the timeline hands its job id to plotly's click event
    assert page.evaluate("document.getElementById('chart-1').data.some(t => t.customdata)")
    page.close()


@pytest.mark.browser
def test_report_of_a_real_job_renders_its_charts_and_pictures_offline(
    real_world, s3_env, tmp_path, offline_page
):
    path = tmp_path / "real.html"
    assert (
        cli.main(
            [
                "report",
                "--job",
                layout.job_uri(real_world.monitoring, real_world.attacked.job_id),
                "--cache-dir",
                str(real_world.cache_dir),
                "--out",
                str(path),
            ]
        )
        == 0
    )
    page, events = offline_page(path)
    page.wait_for_function(
        "[...document.querySelectorAll('div.chart')].every(d => d.querySelector('svg.main-svg'))",
        timeout=30_000,
    )
    charts = page.evaluate("""() => [...document.querySelectorAll('div.chart')].map(
        d => d.querySelectorAll('g.trace, g.hm, image').length)""")
    # timeline, heat map, layer bars, p-values, crafted share per class
    assert len(charts) == 5 and all(charts), charts
    pictures = page.evaluate("""() => [...document.querySelectorAll('img.px')].map(
        i => [i.className, i.complete && i.naturalWidth === 16 && i.getBoundingClientRect().width >= 90])""")
    assert len(pictures) == 3 * PER_HOUR and all(ok for _, ok in pictures)
    # the timeline shows both jobs, the attacked one marked as an incident
    incident = page.evaluate("""() => document.getElementById('chart-1').data
        .filter(t => t.name === 'incident').map(t => t.customdata.map(c => c[0]))""")
    assert incident == [[real_world.attacked.job_id]]
    assert events == {"blocked": [], "console": [], "errors": [], "dialogs": []}
    page.screenshot(path=str(tmp_path / "real.png"), full_page=True)
    page.close()
