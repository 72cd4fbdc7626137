"""Monitoring job pieces that need no trials: time and interval parsing, endpoint names,
the bookmark and claim chain (on a local folder), the schedule, CloudWatch metric
building and the SageMaker Processing configuration."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ladis_core import monitoring as monitor
from ladis_core import processing, store
from ladis_core.errors import InputError, LadisError
from ladis_core.monitoring.claims import ACTIVE, FREE, RELEASED, STALE, Claims
from ladis_core.monitoring.metrics import job_metrics, publish_job_metrics
from ladis_core.monitoring.results import (
    STATUS_INSUFFICIENT,
    JobResult,
    LayerResult,
)
from ladis_core.store import layout
from tests.support.factories import make_job

# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3600),
        ("30m", 1800),
        ("90s", 90),
        ("1d", 86400),
        ("1h30m", 5400),
        ("0.5s", 0.5),
        ("15", 15),
    ],
)
def test_parse_interval(text: str, seconds: float) -> None:
    assert monitor.parse_interval(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "1x", "-1h", "0s", "1h30", "soon"])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(InputError, match="interval"):
        monitor.parse_interval(text)


def test_parse_time_forms() -> None:
    expected = datetime(2026, 11, 23, 17, tzinfo=UTC)
    assert monitor.parse_time("2026-11-23T17:00:00Z") == expected
    assert monitor.parse_time("2026-11-23T18:00:00+01:00") == expected
    assert monitor.parse_time("2026-11-23T17:00:00") == expected  # naive = UTC
    assert monitor.parse_time("2026-11-23T17-00-00Z") == expected  # a job id
    assert layout.job_id_for(monitor.parse_time("2026-11-23T17:00:00Z")) == "2026-11-23T17-00-00Z"
    with pytest.raises(InputError, match="ISO-8601"):
        monitor.parse_time("5pm")


def test_derive_endpoint() -> None:
    assert monitor.derive_endpoint("s3://b/ladis/monitoring/shop", "s3://x/y") == "shop"
    assert monitor.derive_endpoint("s3://b/results", "s3://b/trials/shop/inference") == "shop"
    assert monitor.derive_endpoint("/data/mon/", "/data/inf") == "mon"


# --------------------------------------------------------------------------- bookmark and claims


def _result(job_id: str, *, first: int | None, last: int | None, status: str = "ok") -> JobResult:
    return make_job(
        job_id=job_id,
        rate=None if status != "ok" else 5.0,
        baseline=None,
        first_step=first,
        last_step=last,
        requests=0 if last is None else last - first + 1,
        layers={},
        incident=False,
        status=status,
    )


def test_bookmark_never_moves_back(tmp_path: Path) -> None:
    out = str(tmp_path)
    assert monitor.read_bookmark(out) == monitor.Bookmark()
    assert monitor.Bookmark().next_step == 0
    assert monitor.write_bookmark(out, monitor.Bookmark(last_step=10, job_id="a"))
    assert not monitor.write_bookmark(out, monitor.Bookmark(last_step=5, job_id="b"))
    assert monitor.read_bookmark(out).last_step == 10
    assert store.read_json(layout.bookmark_uri(out))["next_step"] == 11


def test_claim_chain_states(tmp_path: Path) -> None:
    """Committed claims move the chain on; a released or expired one frees its node; an
    active one holds it; a lost race returns None."""
    out = str(tmp_path)
    ledger = Claims(out)
    first = ledger.try_claim(0, 0, job_id="2026-01-01T00-00-00Z", last_step=9, lease_s=60)
    assert first is not None
    assert ledger.try_claim(0, 0, job_id="2026-01-01T01-00-00Z", last_step=12, lease_s=60) is None
    end = ledger.walk(0)
    assert (end.node, end.state, end.attempt, end.holder.job_id) == (0, ACTIVE, 0, first.job_id)

    # its result commits it: the chain continues after step 9, which read_bookmark sees
    # even though bookmark.json was never written
    store.write_json(
        layout.results_uri(out, first.job_id), _result(first.job_id, first=0, last=9).to_dict()
    )
    end = ledger.walk(0)
    assert (end.node, end.last_committed.job_id, end.state) == (10, first.job_id, FREE)
    assert monitor.read_bookmark(out).last_step == 9

    # a released claim gives its node back; the next attempt takes it
    second = ledger.try_claim(10, 0, job_id="2026-01-01T02-00-00Z", last_step=20, lease_s=60)
    ledger.release(second, "test")
    end = ledger.walk(0)
    assert (end.state, end.attempt, end.next_attempt) == (RELEASED, 0, 1)
    third = ledger.try_claim(10, 1, job_id="2026-01-01T03-00-00Z", last_step=25, lease_s=0.001)
    assert third is not None
    time.sleep(0.01)
    # its lease has run out without a result: stale, so the node can be taken again
    end = ledger.walk(10)
    assert (end.state, end.attempt) == (STALE, 1)
    assert not ledger.still_owner(second)


def test_claim_of_a_dead_process_is_stale_at_once(tmp_path: Path) -> None:
    ledger = Claims(str(tmp_path))
    claim = ledger.try_claim(0, 0, job_id="2026-01-01T00-00-00Z", last_step=3, lease_s=3600)
    data = dict(claim.__dict__, pid=2**22 + 12345)  # no such process on this host
    store.write_json(ledger.claim_uri(0, 0), data)
    assert ledger.walk(0).state == STALE


def test_insufficient_result_does_not_commit_a_claim(tmp_path: Path) -> None:
    out = str(tmp_path)
    claim = Claims(out).try_claim(0, 0, job_id="2026-01-01T00-00-00Z", last_step=3, lease_s=3600)
    store.write_json(
        layout.results_uri(out, claim.job_id),
        _result(claim.job_id, first=0, last=3, status=STATUS_INSUFFICIENT).to_dict(),
    )
    state = Claims(out).walk(0).state
    assert state == "released"


def test_load_jobs_sorts_and_skips_what_is_not_a_job(tmp_path: Path) -> None:
    out = str(tmp_path)
    for job_id in ("2026-01-02T00-00-00Z", "2026-01-01T00-00-00Z"):
        store.write_json(
            layout.results_uri(out, job_id), _result(job_id, first=0, last=1).to_dict()
        )
    (tmp_path / "2026-01-03T00-00-00Z").mkdir()  # a job still running: no results.json yet
    store.write_bytes(layout.results_uri(out, "2026-01-04T00-00-00Z"), b"{not json")
    store.write_json(layout.join(out, "_state", "x.json"), {})
    jobs = monitor.load_jobs(out)
    assert [j.job_id for j in jobs] == ["2026-01-01T00-00-00Z", "2026-01-02T00-00-00Z"]
    assert monitor.load_jobs(str(tmp_path / "nothing")) == []


# --------------------------------------------------------------------------- schedule


class _Clock:
    """A clock that advances only when the schedule sleeps (or a job takes time)."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_run_every_aligns_ticks_and_survives_failures() -> None:
    clock = _Clock(datetime(2026, 11, 23, 17, 25, 10, tzinfo=UTC))
    seen: list[datetime] = []

    def job(at: datetime) -> None:
        seen.append(at)
        clock.now += timedelta(seconds=20)  # a job takes time
        if len(seen) == 2:
            raise InputError("bad layer")
        if len(seen) == 3:
            raise RuntimeError("a bug")
        if len(seen) == 4:
            raise monitor.JobExistsError("x", "uri")

    summary = monitor.run_every(job, interval="1h", max_runs=5, sleep=clock.sleep, clock=clock)
    assert [t.strftime("%H:%M:%S") for t in seen] == [
        "17:00:00",
        "18:00:00",
        "19:00:00",
        "20:00:00",
        "21:00:00",
    ]
    assert (summary.runs, summary.succeeded, summary.failed) == (5, 3, 2)
    assert clock.sleeps[0] == pytest.approx(3600 - 25 * 60 - 10 - 20)


def test_run_every_skips_ticks_missed_by_a_long_run() -> None:
    clock = _Clock(datetime(2026, 11, 23, 17, 0, 0, tzinfo=UTC))
    seen: list[datetime] = []

    def job(at: datetime) -> None:
        seen.append(at)
        if len(seen) == 1:
            clock.now += timedelta(minutes=150)

    summary = monitor.run_every(job, interval="1h", max_runs=2, sleep=clock.sleep, clock=clock)
    # 18:00 is skipped; 19:00, the tick in progress when the long run ends, runs at once
    assert [t.hour for t in seen] == [17, 19]
    assert summary.skipped_ticks == 1 and clock.sleeps == []


def test_run_every_rejects_bad_bounds() -> None:
    with pytest.raises(InputError, match="max_runs"):
        monitor.run_every(lambda at: None, interval="1s", max_runs=0)


# --------------------------------------------------------------------------- metrics


def _rated(rate: float | None, *, incident: bool = False) -> JobResult:
    return make_job(
        job_id="2026-11-23T17-00-00Z",
        rate=rate,
        endpoint="shop",
        requests=10,
        first_step=0,
        layers={"avgpool_output_0": LayerResult(detection_rate=rate)},
        incident=incident,
    )


def test_job_metrics_values_and_no_false_zero() -> None:
    points = {(p.name, p.dimensions): p for p in job_metrics(_rated(97.0, incident=True))}
    endpoint = (("Endpoint", "shop"),)
    assert points[("DetectionRate", endpoint)].value == 97.0
    assert points[("DetectionRate", endpoint)].unit == "Percent"
    assert points[("BaselineDetectionRate", endpoint)].value == 4.0
    assert (
        points[("Requests", endpoint)].value == 10
        and points[("Requests", endpoint)].unit == "Count"
    )
    assert points[("Incident", endpoint)].value == 1.0
    assert points[("LayerDetectionRate", (*endpoint, ("Layer", "avgpool_output_0")))].value == 97.0
    assert points[("Requests", endpoint)].timestamp == datetime(2026, 11, 23, 17, tzinfo=UTC)
    assert {p.name for p in job_metrics(_rated(None))} == {"Requests"}


def test_publish_disabled_sends_nothing() -> None:
    class Refuses:
        def put_metric_data(self, **kwargs):  # pragma: no cover - must not be called
            raise AssertionError("sent")

    assert publish_job_metrics(_rated(5.0), enabled=False, client=Refuses()) == 0


# --------------------------------------------------------------------------- processing


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("true", True),
        ("False", False),
        ("1", True),
        ("0", False),
        ("Enabled", True),
        ("disabled", False),
        ("YES", True),
        ("off", False),
    ],
)
def test_parse_bool(raw: str, value: bool) -> None:
    assert processing.parse_bool(raw, name="X") is value


def test_parse_numbers() -> None:
    assert processing.parse_int("100", name="N") == 100
    assert processing.parse_int("100.0", name="N") == 100
    assert processing.parse_int("1e3", name="N") == 1000
    assert processing.parse_float("5e-2", name="A") == 0.05
    with pytest.raises(InputError, match="N='1.5' is not a whole number"):
        processing.parse_int("1.5", name="N")
    with pytest.raises(InputError, match="N='ten' is not an integer"):
        processing.parse_int("ten", name="N")
    with pytest.raises(InputError, match="A='nan' is not a finite number"):
        processing.parse_float("nan", name="A")
    with pytest.raises(InputError, match="B='maybe' is not a boolean"):
        processing.parse_bool("maybe", name="B")


def _config(tmp_path: Path, **overrides) -> Path:
    data = {
        "ProcessingJobName": "job",
        "AppSpecification": {"ImageUri": "ladis", "ContainerArguments": ["--seed", "7"]},
        "Environment": {"LADIS_N_SAMPLES": "50", "LADIS_CLOUDWATCH": "true"},
        "ProcessingInputs": [
            {
                "InputName": "reference",
                "S3Input": {"S3Uri": "s3://b/ref", "LocalPath": "/opt/ml/processing/r"},
            },
            {
                "InputName": "inference",
                "S3Input": {"S3Uri": "s3://b/inf", "LocalPath": "/opt/ml/processing/i"},
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [{"OutputName": "results", "S3Output": {"S3Uri": "s3://b/mon"}}]
        },
        **overrides,
    }
    path = tmp_path / "processingjobconfig.json"
    path.write_text(json.dumps(data))
    return path


def test_processing_config_to_monitor_arguments(tmp_path: Path) -> None:
    config = processing.read_processing_config(_config(tmp_path))
    assert config.inputs == {"reference": "s3://b/ref", "inference": "s3://b/inf"}
    assert config.outputs == {"results": "s3://b/mon"} and config.arguments == ["--seed", "7"]
    env = {
        "LADIS_N_SAMPLES": "60.0",  # the environment wins over the config's Environment map
        "LADIS_ALPHA": "1e-2",
        "LADIS_ALL_STEPS": "false",
        "LADIS_CLASS_MATCHED": "0",
        "LADIS_LAYERS": " avgpool , layer4.1 ,",
        "sagemaker_endpoint_name": "shop",
        "publish_cloudwatch_metrics": "Disabled",
    }
    args = processing.monitor_arguments(config, env)
    pairs = dict(zip(args[::2], args[1::2], strict=False))
    assert args[:6] == [
        "--reference",
        "s3://b/ref",
        "--inference",
        "s3://b/inf",
        "--output",
        "s3://b/mon",
    ]
    assert "--n-samples" in args and args[args.index("--n-samples") + 1] == "60"
    assert args[args.index("--alpha") + 1] == "0.01"
    assert args[args.index("--layers") + 1] == "avgpool,layer4.1"
    assert args[args.index("--endpoint") + 1] == "shop"
    assert "--all-steps" not in args and "--no-class-matched" in args
    assert "--cloudwatch" in args  # LADIS_CLOUDWATCH=true from the config's Environment
    assert pairs  # the list is usable as argv

    from ladis_core import cli

    parsed = cli.build_parser().parse_args(["monitor", *args, "--seed", "7"])
    assert (parsed.n_samples, parsed.alpha, parsed.seed, parsed.class_matched) == (
        60,
        0.01,
        7,
        False,
    )
    assert parsed.layers == ["avgpool", "layer4.1"] and parsed.cloudwatch is True


def test_processing_missing_config_is_fine_and_bad_json_is_not(tmp_path: Path) -> None:
    assert (
        processing.read_processing_config(tmp_path / "absent.json")
        == processing.ProcessingJobConfig()
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        processing.read_processing_config(bad)


def test_processing_bad_value_exits_2_and_writes_the_message(tmp_path: Path, capsys) -> None:
    path = _config(tmp_path)
    (tmp_path / "output").mkdir()
    message = tmp_path / "output" / "message"
    env = {
        **os.environ,
        processing.CONFIG_PATH_VARIABLE: str(path),
        processing.MESSAGE_PATH_VARIABLE: str(message),
        "LADIS_PERMUTATIONS": "lots",
    }
    assert processing.main([], environ=env) == 2
    assert "LADIS_PERMUTATIONS='lots' is not an integer" in capsys.readouterr().err
    assert "LADIS_PERMUTATIONS" in message.read_text()


def test_job_exists_error_says_already_done_by_its_kind() -> None:
    exc = monitor.JobExistsError(
        "2026-11-23T17-00-00Z", "s3://b/m/2026-11-23T17-00-00Z/results.json"
    )
    # what it means is in its class and kind, not in an exit code of 0 on an error
    assert isinstance(exc, LadisError) and exc.kind == "job-exists" and exc.exit_code == 2
    assert "job 2026-11-23T17-00-00Z already exists" in str(exc)


def test_class_names_come_from_the_model_spec_of_the_world(tmp_path):
    from ladis_core.monitoring import class_names_for

    spec = tmp_path / "models" / "ep" / "model.json"
    spec.parent.mkdir(parents=True)
    spec.write_text('{"class_names": ["zero", "one"]}')
    assert class_names_for(f"{tmp_path}/trials/ep/reference") == {"0": "zero", "1": "one"}
    assert class_names_for(f"{tmp_path}/trials/other/reference") == {}
    assert class_names_for("s3://bucket/somewhere/else") == {}
