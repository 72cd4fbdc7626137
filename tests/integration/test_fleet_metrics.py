"""Prometheus metrics, scraped for real: ``fleet run --every`` serves /metrics and a real
Prometheus server (Debian's ``prometheus``, its own process) scrapes it; the serving
endpoint's /metrics is read with prometheus_client's own parser."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ladis_core.devtools.ports import find_free_port, port_answers
from ladis_core.store import layout
from tests.support.fleet_world import FleetTrials, fleet_toml, upload

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - 127.0.0.1
        return answer.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition, by the client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _wait(condition, *, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_fleet_run_metrics_are_scraped_by_prometheus(
    s3_bucket: str, fleet_trials: FleetTrials, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is missing: run scripts/install.sh --test"
    windows = {"calm": fleet_trials.clean[0], "attacked": fleet_trials.shifted[0]}
    for name, steps in windows.items():
        upload(fleet_trials.reference, layout.reference_trial_uri(s3_bucket, name))
        upload(fleet_trials.inference, layout.inference_trial_uri(s3_bucket, name), steps)
    config = tmp_path / "fleet.toml"
    config.write_text(fleet_toml(s3_bucket, list(windows)))
    port, prom_port = find_free_port(), find_free_port()
    log = open(tmp_path / "fleet.log", "w+")  # noqa: SIM115
    fleet_run = subprocess.Popen(
        [sys.executable, "-m", "ladis_core", "fleet", "run", "--config", str(config),
         "--every", "1h", "--metrics-port", str(port), "--cache-dir", str(tmp_path / "cache")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO, start_new_session=True,
    )  # fmt: skip
    prometheus = None
    try:
        _wait(
            lambda: "windows in" in (tmp_path / "fleet.log").read_text(),
            timeout_s=240,
            what="the first grid of fleet run",
        )
        text = _get(f"http://127.0.0.1:{port}/metrics")
        samples = _samples(text)
        assert samples[("ladis_incident", (("endpoint", "attacked"),))] == 1.0
        assert samples[("ladis_incident", (("endpoint", "calm"),))] == 0.0
        assert samples[("ladis_window_requests", (("endpoint", "calm"),))] == 6.0
        assert samples[("ladis_requests_total", (("endpoint", "calm"),))] == 6.0
        assert samples[("ladis_detection_rate_percent", (("endpoint", "attacked"),))] > 50
        assert ("ladis_baseline_detection_rate_percent", (("endpoint", "calm"),)) in samples
        assert samples[("ladis_job_duration_seconds_count", (("endpoint", "calm"),))] == 1.0
        last = samples[("ladis_last_success_timestamp_seconds", (("endpoint", "calm"),))]
        assert abs(last - time.time()) < 600

        # a real Prometheus scrapes the same endpoint
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ladis\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
        prometheus = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        _wait(lambda: port_answers(prom_port, "127.0.0.1"), timeout_s=60, what="prometheus")
        query = urllib.parse.quote("ladis_incident")

        def scraped():
            answer = json.loads(_get(f"http://127.0.0.1:{prom_port}/api/v1/query?query={query}"))
            found = answer["data"]["result"]
            return found if len(found) == 2 else None

        series = _wait(scraped, timeout_s=60, what="prometheus to scrape fleet run")
        values = {s["metric"]["endpoint"]: float(s["value"][1]) for s in series}
        assert values == {"attacked": 1.0, "calm": 0.0}
        assert {s["metric"]["job"] for s in series} == {"ladis"}
    finally:
        if prometheus is not None:
            _stop(prometheus)
        _stop(fleet_run)
        log.close()


def test_serve_exposes_request_and_capture_counters(s3_bucket: str, tmp_path: Path) -> None:
    import torch

    from ladis_core.model.spec import ModelSpec, build_model, save_model
    from ladis_core.serving import invoke, start_server

    spec = ModelSpec(input_shape=(3, 8, 8))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model_dir = save_model(build_model(spec), spec, tmp_path / "model")
    capture = f"{s3_bucket}trials/served/inference"
    images = np.random.default_rng(0).random((3, 3, 8, 8), dtype=np.float32)
    with start_server(model_dir, capture_uri=capture) as running:
        for image in images:
            invoke(running.url, image)
        with pytest.raises(urllib.error.HTTPError) as refused:  # refusals are counted too
            _get(f"{running.url.rstrip('/')}/invocations")
        assert refused.value.code == 405
        running.flush()
        text = _get(f"{running.url.rstrip('/')}/metrics")
    samples = _samples(text)
    ok = ("ladis_endpoint_responses_total", (("code", "200"), ("path", "/invocations")))
    assert samples[ok] == 3.0
    assert (
        samples[("ladis_endpoint_responses_total", (("code", "405"), ("path", "/invocations")))]
        == 1.0
    )
    assert samples[("ladis_endpoint_captured_requests_total", ())] == 3.0
    assert samples[("ladis_capture_steps_published", ())] == 3.0
    assert samples[("ladis_capture_steps_recorded", ())] == 3.0
    assert samples[("ladis_capture_steps_dropped", ())] == 0.0
    assert samples[("ladis_capture_queue_steps", ())] == 0.0
    assert samples[("ladis_capture_upload_failing", ())] == 0.0
    assert s3_bucket not in text  # counts only: no storage location in the metrics
