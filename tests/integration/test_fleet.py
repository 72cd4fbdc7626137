"""Fleets end to end, in-process: real trials captured by the project's capture, a real
SeaweedFS, the real CLI. The grid on a real Dask cluster is in test_fleet_cluster.py,
alerts in test_fleet_alerts.py, metrics in test_fleet_metrics.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ladis_core import fleet, store
from ladis_core.fleet.engines import LocalEngine
from ladis_core.fleet.status import FAILING, QUIET, scan
from ladis_core.monitoring.jobs import load_jobs
from ladis_core.monitoring.results import STATUS_INSUFFICIENT, STATUS_OK
from ladis_core.store import layout
from tests.support.fleet_world import FleetTrials, fleet_toml, parse, upload

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T1, T2, T3 = "2026-11-23T17:00:00Z", "2026-11-23T18:00:00Z", "2026-11-23T19:00:00Z"


@pytest.fixture
def trials(fleet_trials: FleetTrials) -> FleetTrials:
    return fleet_trials


def _world(bucket: str, trials: FleetTrials, names: list[str]) -> None:
    for name in names:
        upload(trials.reference, layout.reference_trial_uri(bucket, name))


def _at(text: str):
    return layout.parse_time(text)


def test_due_windows_run_once_and_each_tests_its_own_traffic(
    s3_bucket: str, trials: FleetTrials, tmp_path: Path
) -> None:
    names = ["alpha", "beta"]
    _world(s3_bucket, trials, names)
    config = parse(fleet_toml(s3_bucket, names))
    for name in names:
        upload(trials.inference, layout.inference_trial_uri(s3_bucket, name), trials.clean[0])
    options = fleet.WindowOptions(cache_dir=str(tmp_path / "cache"))
    engine = LocalEngine(workers=2)
    try:
        first = fleet.run_grid(config, [_at(T1)], engine, options=options)
        assert [o.status for o in first.outcomes] == ["ok", "ok"], first.describe()
        again = fleet.run_grid(config, [_at(T1)], engine, options=options)
        assert [o.status for o in again.outcomes] == ["exists", "exists"]
        for name in names:
            upload(trials.inference, layout.inference_trial_uri(s3_bucket, name), trials.clean[1])
        second = fleet.run_grid(config, [_at(T2)], engine, options=options)
        assert [o.status for o in second.outcomes] == ["ok", "ok"]
    finally:
        engine.close()
    for name in names:
        jobs = load_jobs(layout.monitoring_uri(s3_bucket, name))
        assert [j.job_id for j in jobs] == ["2026-11-23T17-00-00Z", "2026-11-23T18-00-00Z"]
        assert [(j.first_step, j.last_step) for j in jobs] == [(0, 5), (6, 11)]
        assert all(j.status == STATUS_OK and j.endpoint == name for j in jobs)
        status = fleet.endpoint_status(name, layout.monitoring_uri(s3_bucket, name))
        assert status.state in (QUIET, "stale") and status.last_job.job_id == jobs[-1].job_id


def test_a_backfill_runs_every_window_of_the_range_in_order(
    s3_bucket: str, trials: FleetTrials, tmp_path: Path
) -> None:
    _world(s3_bucket, trials, ["gamma"])
    upload(trials.inference, layout.inference_trial_uri(s3_bucket, "gamma"), trials.clean[0])
    config = parse(fleet_toml(s3_bucket, ["gamma"]))
    moments = fleet.ticks(_at(T1), _at(T3), config.every)
    assert len(moments) == 3
    engine = LocalEngine(workers=2)
    try:
        summary = fleet.run_grid(
            config, moments, engine, options=fleet.WindowOptions(cache_dir=str(tmp_path))
        )
    finally:
        engine.close()
    assert [o.job_id for o in summary.outcomes] == [layout.job_id_for(m) for m in moments]
    jobs = load_jobs(layout.monitoring_uri(s3_bucket, "gamma"))
    # the traffic present when the backfill ran is tested by its first window; the later
    # windows of the range find nothing new (capture does not time-stamp requests)
    assert [j.status for j in jobs] == [STATUS_OK, STATUS_INSUFFICIENT, STATUS_INSUFFICIENT]
    assert (jobs[0].first_step, jobs[0].last_step) == (0, 5)
    assert [j.requests for j in jobs[1:]] == [0, 0]


def test_a_failing_window_is_recorded_and_retried_and_the_others_go_on(
    s3_bucket: str, trials: FleetTrials, tmp_path: Path
) -> None:
    _world(s3_bucket, trials, ["good"])  # "broken" has no reference trial
    for name in ("good", "broken"):
        upload(trials.inference, layout.inference_trial_uri(s3_bucket, name), trials.clean[0])
    config = parse(fleet_toml(s3_bucket, ["broken", "good"]))
    engine = LocalEngine()
    try:
        summary = fleet.run_grid(
            config,
            [_at(T1), _at(T2)],
            engine,
            options=fleet.WindowOptions(cache_dir=str(tmp_path)),
        )
    finally:
        engine.close()
    by = {(o.endpoint, o.job_id): o for o in summary.outcomes}
    broken = by[("broken", "2026-11-23T17-00-00Z")]
    assert broken.status == "failed" and broken.error_kind == "not-found"
    assert "reference" in broken.message
    assert by[("broken", "2026-11-23T18-00-00Z")].status == "skipped"
    assert by[("good", "2026-11-23T17-00-00Z")].status == "ok"
    assert by[("good", "2026-11-23T18-00-00Z")].status == "ok"
    assert summary.retried == config.retries == 2
    output = layout.monitoring_uri(s3_bucket, "broken")
    failures = store.list_objects(layout.join(output, "2026-11-23T17-00-00Z", "failures"))
    assert len(failures) == 3  # the first try and two retries, each recorded
    record = store.read_json(failures[0].uri)
    assert record["kind"] == "not-found" and record["job_id"] == "2026-11-23T17-00-00Z"
    status = fleet.endpoint_status("broken", output)
    assert status.state == FAILING and status.failed_windows == ("2026-11-23T17-00-00Z",)
    assert scan(output).job_ids == ()


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "ladis_core", "fleet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )


def test_cli_backfill_and_status(s3_bucket: str, trials: FleetTrials, tmp_path: Path) -> None:
    _world(s3_bucket, trials, ["delta"])
    upload(trials.inference, layout.inference_trial_uri(s3_bucket, "delta"), trials.clean[0])
    config = tmp_path / "fleet.toml"
    config.write_text(fleet_toml(s3_bucket, ["delta"]))
    done = _cli(
        "run", "--config", str(config), "--from", T1, "--to", T2, "--cache-dir", str(tmp_path / "c")
    )
    assert done.returncode == 0, done.stderr
    assert "2 windows" in done.stdout and "2 written" in done.stdout
    status = _cli("status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    header, row = status.stdout.splitlines()[:2]
    assert header.split()[:4] == ["ENDPOINT", "LAST", "JOB", "AGE"]
    assert row.split()[:2] == ["delta", "2026-11-23T18-00-00Z"]
    assert "stale" in row  # two windows of 2026 ago, long past


def test_cli_refuses_a_bad_config_naming_the_key_and_line(tmp_path: Path) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(
        '[defaults]\nn_samples = 20\n\n[[endpoint]]\nname = "a"\nreference = "s3://b/r"\n'
        'inference = "s3://b/i"\noutput = "s3://b/o"\nwindow_size = 3\n'
    )
    done = _cli("run", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {config} line 9: unknown key 'window_size' in [endpoint] (known: alerts, "
        "alpha, alpha_incident, class_matched, inference, kernel, layers, margin, min_rate, "
        "n_permutations, n_repeats, n_samples, name, output, reference, rule, seed, "
        "standardize)"
    )
    assert "Traceback" not in done.stderr
