"""The grid on a real Dask cluster: a scheduler and two worker processes on 127.0.0.1,
started and stopped by the test; 6 endpoints × 3 windows of real trials in a real
SeaweedFS. A worker is killed (SIGKILL) while it holds a window's claim: the window is
retried on the other worker, and nothing is lost or written twice, even when a second
fleet run (the CLI, on the same cluster) overlaps the last grid."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ladis_core import fleet, store
from ladis_core.fleet.engines import DaskEngine
from ladis_core.monitoring.claims import Claims
from ladis_core.monitoring.jobs import load_jobs
from ladis_core.monitoring.results import STATUS_OK, JobSettings
from ladis_core.store import layout
from tests.support.dask_cluster import DaskTestCluster
from tests.support.fleet_world import FleetTrials, endpoint_names, fleet_toml, parse, upload

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TIMES = ("2026-11-23T17:00:00Z", "2026-11-23T18:00:00Z", "2026-11-23T19:00:00Z")
HEAVY = JobSettings(n_samples=20, n_repeats=100, n_permutations=2000, seed=0)
IDS = tuple(layout.job_id_for(layout.parse_time(t)) for t in TIMES)


@pytest.fixture
def cluster(tmp_path: Path, s3_env: dict) -> DaskTestCluster:
    running = DaskTestCluster(tmp_path, workers=2)
    yield running
    running.stop()


def _claims_of(pid: int, outputs: list[str], node: int) -> list[tuple[str, dict]]:
    """(output, claim) of the claims on ``node`` made by process ``pid``."""
    found = []
    for output in outputs:
        prefix = layout.join(output, "_state", "claims", f"{node:012d}")
        for info in store.list_objects(prefix):
            if info.uri.endswith(".released.json"):
                continue
            claim = store.read_json(info.uri)
            if claim.get("pid") == pid:
                found.append((output, claim))
    return found


def test_grid_on_a_dask_cluster_survives_a_killed_worker_and_an_overlapping_run(
    s3_bucket: str, fleet_trials: FleetTrials, cluster: DaskTestCluster, tmp_path: Path
) -> None:
    names = endpoint_names(6)
    outputs = [layout.monitoring_uri(s3_bucket, n) for n in names]
    for name in names:
        upload(fleet_trials.reference, layout.reference_trial_uri(s3_bucket, name))
    config_path = tmp_path / "fleet.toml"
    config_path.write_text(fleet_toml(s3_bucket, names))
    config = parse(config_path.read_text())
    options = fleet.WindowOptions(cache_dir=str(tmp_path / "cache"))
    windows = fleet_trials.clean[:2] + fleet_trials.shifted[:1]

    def arrive(k: int) -> None:
        for name in names:
            upload(fleet_trials.inference, layout.inference_trial_uri(s3_bucket, name), windows[k])

    engine = DaskEngine(address=cluster.address)
    try:
        assert engine.workers == 2
        # window 1: the plain grid
        arrive(0)
        first = fleet.run_grid(config, [layout.parse_time(TIMES[0])], engine, options=options)
        assert sorted(o.status for o in first.outcomes) == ["ok"] * 6, first.describe()
        assert len({o.worker for o in first.outcomes}) == 2  # both workers took windows

        # window 2: kill a worker while it holds a claim on the new steps (heavier
        # settings, so that it is caught mid-analysis rather than mid-write)
        arrive(1)
        heavy = parse(fleet_toml(s3_bucket, names, settings=HEAVY))
        victim = cluster.workers[0]
        box: dict = {}
        runner = threading.Thread(
            target=lambda: box.update(
                summary=fleet.run_grid(
                    heavy, [layout.parse_time(TIMES[1])], engine, options=options
                )
            )
        )
        runner.start()
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and runner.is_alive() and time.monotonic() < deadline:
            for output, claim in _claims_of(victim.pid, outputs, node=6):
                if not store.exists(layout.results_uri(output, claim["job_id"])):
                    cluster.kill(victim)
                    killed = output
                    break
            time.sleep(0.02)
        runner.join(timeout=300)
        assert killed is not None, "the victim worker never held a claim mid-window"
        second = box["summary"]
        assert sorted(o.status for o in second.outcomes) == ["ok"] * 6, second.describe()
        retried = next(
            o for o in second.outcomes if layout.monitoring_uri(s3_bucket, o.endpoint) == killed
        )
        assert retried.worker.split(":")[-1] != str(victim.pid)
        # the dead worker's claim stays as it was; the retry won the next attempt
        attempts = store.list_objects(layout.join(killed, "_state", "claims", f"{6:012d}"))
        assert len([a for a in attempts if not a.uri.endswith(".released.json")]) == 2

        # window 3: a second fleet run (the CLI) overlaps this one on the same cluster
        cluster.add_worker()
        cluster.wait_for_workers(2)
        arrive(2)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        other = subprocess.Popen(
            [sys.executable, "-m", "ladis_core", "fleet", "run", "--config", str(config_path),
             "--engine", "dask", "--address", cluster.address, "--from", TIMES[2], "--to", TIMES[2],
             "--cache-dir", str(tmp_path / "cache-cli")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        third = fleet.run_grid(config, [layout.parse_time(TIMES[2])], engine, options=options)
        printed, _ = other.communicate(timeout=300)
        assert other.returncode == 0, printed
    finally:
        engine.close()

    statuses = sorted(o.status for o in third.outcomes)
    assert set(statuses) <= {"ok", "exists"} and "failed" not in statuses, third.describe()
    cli_written = int(printed.split(" written")[0].rsplit(" ", 1)[-1])
    assert statuses.count("ok") + cli_written == 6  # each window written by one run only

    for name, output in zip(names, outputs, strict=True):
        jobs = load_jobs(output)
        assert [j.job_id for j in jobs] == list(IDS), name
        assert all(j.status == STATUS_OK for j in jobs)
        # every request tested once: the windows tile the steps without gap or overlap
        assert [(j.first_step, j.last_step, j.requests) for j in jobs] == [
            (0, 5, 6),
            (6, 11, 6),
            (12, 17, 6),
        ]
        end = Claims(output).walk(0)  # the chain of committed claims covers every step
        assert (end.node, end.state, end.last_committed.job_id) == (18, "free", IDS[2])
    assert jobs[-1].detection_rate > jobs[0].detection_rate  # the shifted window shows
