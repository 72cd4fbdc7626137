"""Monitoring state that others can write (issue 11, items 14 and 15): a planted baseline
cache, claims from containers sharing a host name, verdicts with naive times or in the
wrong folder, and a backlog bigger than one window. Real trials, a local world."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from ladis_core import capture, stats, store
from ladis_core import monitoring as monitor
from ladis_core._process import host_identity
from ladis_core.errors import StorageError
from ladis_core.monitoring import triage
from ladis_core.monitoring.baseline import BASELINE_SPLITS, plausible_baseline
from ladis_core.monitoring.claims import ACTIVE, STALE, Claims
from ladis_core.monitoring.results import JobSettings
from ladis_core.store import layout
from tests.support.trials import tiny_model, write_trial

SETTINGS = JobSettings(n_samples=10, n_repeats=10, n_permutations=49, seed=1)


@pytest.fixture
def world(tmp_path: Path) -> dict[str, str]:
    reference, inference = tmp_path / "reference", tmp_path / "inference"
    generator = torch.Generator().manual_seed(5)
    batches = [torch.rand(10, 3, 2, 2, generator=generator) for _ in range(4)]
    capture.capture_reference(tiny_model(), batches, str(reference), include_inputs=False)
    write_trial(inference, 30, first_value=0.02)
    return {
        "reference": str(reference),
        "inference": str(inference),
        "output": str(tmp_path / "monitoring"),
    }


def _job(world: dict[str, str], at: str, **options):
    return monitor.run_job(**world, at=at, settings=SETTINGS, **options)


# --------------------------------------------------------------------------- baseline cache


def test_a_planted_baseline_cannot_raise_the_alert_threshold(world, monkeypatch):
    first = _job(world, "2026-11-23T01:00:00Z", max_window_steps=15)
    [entry] = store.list_objects(layout.join(world["output"], "_state", "baseline"))
    planted = store.read_json(entry.uri)
    planted["combined"] = 100.0
    planted["layers"] = {name: 100.0 for name in planted["layers"]}
    store.write_json(entry.uri, planted)  # what anyone who can write the store can do

    calls = []
    real = stats.multi_layer_detection_rate
    monkeypatch.setattr(
        stats, "multi_layer_detection_rate", lambda *a, **k: calls.append(k) or real(*a, **k)
    )
    second = _job(world, "2026-11-23T02:00:00Z", max_window_steps=15)
    assert second.baseline_detection_rate == first.baseline_detection_rate  # recomputed
    assert second.alert_threshold < 100.0
    assert any(k.get("baseline") for k in calls)


def test_a_cached_baseline_must_name_the_rows_it_was_computed_on(world, monkeypatch):
    _job(world, "2026-11-23T01:00:00Z", max_window_steps=15)
    [entry] = store.list_objects(layout.join(world["output"], "_state", "baseline"))
    planted = store.read_json(entry.uri)
    planted["combined"] = 0.0  # plausible, but for other rows than this reference's
    planted["digest"] = "0" * 64
    store.write_json(entry.uri, planted)
    computed = []
    real = stats.multi_layer_detection_rate
    monkeypatch.setattr(
        stats, "multi_layer_detection_rate", lambda *a, **k: computed.append(1) or real(*a, **k)
    )
    _job(world, "2026-11-23T02:00:00Z", max_window_steps=15)
    assert len(computed) == BASELINE_SPLITS + 1  # the baseline again (every split), the window


def test_a_genuine_cached_baseline_is_used(world, monkeypatch):
    _job(world, "2026-11-23T01:00:00Z", max_window_steps=15)
    computed = []
    real = stats.multi_layer_detection_rate
    monkeypatch.setattr(
        stats, "multi_layer_detection_rate", lambda *a, **k: computed.append(1) or real(*a, **k)
    )
    _job(world, "2026-11-23T02:00:00Z", max_window_steps=15)
    assert len(computed) == 1  # the window only


def test_a_cached_baseline_with_one_high_split_is_used(world, monkeypatch):
    """The R tests of one split share its halves, so one split can be far above alpha
    (29 % on the demo world) while the mean, which sets the threshold, is plausible: such
    an entry is genuine and is used, not recomputed by every job."""
    _job(world, "2026-11-23T01:00:00Z", max_window_steps=15)
    [entry] = store.list_objects(layout.join(world["output"], "_state", "baseline"))
    cached = store.read_json(entry.uri)
    high = plausible_baseline(SETTINGS) + 10.0  # one split above the bound of a mean
    cached["high"] = high
    store.write_json(entry.uri, cached)
    computed = []
    real = stats.multi_layer_detection_rate
    monkeypatch.setattr(
        stats, "multi_layer_detection_rate", lambda *a, **k: computed.append(1) or real(*a, **k)
    )
    second = _job(world, "2026-11-23T02:00:00Z", max_window_steps=15)
    assert len(computed) == 1  # the window only
    assert second.baseline_range == (cached["low"], high)


# --------------------------------------------------------------------------- claims


def _planted_claim(tmp_path: Path, **fields) -> Claims:
    ledger = Claims(str(tmp_path))
    claim = ledger.try_claim(0, 0, job_id="2026-01-01T00-00-00Z", last_step=3, lease_s=3600)
    store.write_json(ledger.claim_uri(0, 0), dict(claim.__dict__, **fields))
    return ledger


def test_a_claim_from_another_container_with_the_same_host_name_is_not_taken_over(tmp_path):
    dead = 2**22 + 12345  # no such process here
    # SageMaker containers are all "algo-1": same name, another machine or PID namespace
    other = _planted_claim(tmp_path / "a", pid=dead, host_id="algo-1|other-boot|pid:[1]")
    assert other.walk(0).state == ACTIVE  # waits for its lease instead
    mine = _planted_claim(tmp_path / "b", pid=dead, host_id=host_identity())
    assert mine.walk(0).state == STALE
    old = _planted_claim(tmp_path / "c", pid=dead)  # written before host ids existed
    data = store.read_json(old.claim_uri(0, 0))
    del data["host_id"]
    store.write_json(old.claim_uri(0, 0), data)
    assert old.walk(0).state == ACTIVE


@pytest.mark.parametrize(
    "fields",
    [{"expires_at": "2026-01-01T00:00:00"}, {"pid": "12"}, {"expires_at": "soon"}],
    ids=["naive-expiry", "text-pid", "bad-expiry"],
)
def test_a_malformed_claim_is_a_storage_error_naming_it(tmp_path, fields):
    ledger = _planted_claim(tmp_path, **fields)
    with pytest.raises(StorageError, match=r"0000\.json is not a valid claim"):
        ledger.walk(0)


# --------------------------------------------------------------------------- verdicts


def test_verdicts_with_naive_times_or_in_the_wrong_folder_break_no_listing(tmp_path):
    monitoring = str(tmp_path / "monitoring")
    job = "2026-11-23T17-00-00Z"
    store.write_json(layout.results_uri(monitoring, job), {})
    triage.add_verdict(monitoring, job, verdict="confirmed", analyst="ana", note="real")
    folder = layout.verdicts_uri(monitoring, job)
    naive = {
        "job_id": job,
        "verdict": "dismissed",
        "analyst": "bob",
        "note": "",
        "at": "2026-11-23T18:00:00",  # no time zone
        "id": "b" * 32,
    }
    store.write_json(f"{folder}/naive.json", naive)
    store.write_json(f"{folder}/misfiled.json", dict(naive, job_id="2026-11-23T18-00-00Z"))
    store.write_json(f"{folder}/odd.json", dict(naive, verdict="<script>", id="c" * 32))
    listed = triage.list_verdicts(monitoring, job)
    assert [v.analyst for v in listed] == ["ana", "bob"] or [v.analyst for v in listed] == [
        "bob",
        "ana",
    ]
    assert {v.verdict for v in listed} == {"confirmed", "dismissed"}
    by_job = triage.verdicts_by_job(monitoring)
    assert set(by_job) == {job} and len(by_job[job]) == 2


# --------------------------------------------------------------------------- the window bound


def test_a_backlog_bigger_than_one_window_is_tested_in_bounded_windows(world, caplog):
    results = [_job(world, f"2026-11-23T0{hour}:00:00Z", max_window_steps=10) for hour in (1, 2, 3)]
    assert [(r.first_step, r.last_step, r.requests) for r in results] == [
        (0, 9, 10),
        (10, 19, 10),
        (20, 29, 10),
    ]
    assert any("a backlog" in r.getMessage() for r in caplog.records)
    bookmark = json.loads(Path(layout.bookmark_uri(world["output"])).read_text())
    assert bookmark["last_step"] == 29


def test_the_window_bound_is_a_cli_option(world):
    from ladis_core import cli

    assert cli.main(
        ["monitor", "--reference", world["reference"], "--inference", world["inference"],
         "--output", world["output"], "--at", "2026-11-23T01:00:00Z", "--n-samples", "10",
         "--repeats", "10", "--permutations", "49", "--max-window-steps", "20"]
    ) == 0  # fmt: skip
    result = store.read_json(layout.results_uri(world["output"], "2026-11-23T01-00-00Z"))
    assert (result["first_step"], result["last_step"]) == (0, 19)
    assert os.path.exists(layout.bookmark_uri(world["output"]))
