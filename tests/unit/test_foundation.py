"""The foundation: CLI entry point, configuration, layout, result schema, local storage."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from ladis_core import __version__, store
from ladis_core.config import redact, world_uri
from ladis_core.errors import DataNotFoundError, InputError, StorageError
from ladis_core.monitoring.evidence import ClassEvidence, WindowEvidence
from ladis_core.monitoring.results import (
    IncidentRule,
    JobResult,
    JobSettings,
    LayerResult,
    TopSample,
)
from ladis_core.stats import ShareEstimate
from ladis_core.store import layout
from tests.support.factories import make_job


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ladis_core", *args], capture_output=True, text=True, timeout=120
    )


def test_version_is_importable():
    assert __version__.count(".") == 2


def test_cli_help_lists_commands():
    result = _run_cli("--help")
    assert result.returncode == 0
    assert "usage: python -m ladis_core" in result.stdout
    commands_section = result.stdout.split("commands:", 1)[1]
    listed = {line.split()[0] for line in commands_section.splitlines() if line.startswith("    ")}
    assert {"s3", "demo", "monitor", "report", "serve"} <= listed


def test_cli_unknown_command_fails():
    result = _run_cli("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_world_uri_defaults_and_slash(monkeypatch):
    monkeypatch.delenv("LADIS_S3_URI", raising=False)
    assert world_uri() == "s3://ladis/"
    monkeypatch.setenv("LADIS_S3_URI", "s3://bucket/prefix")
    assert world_uri() == "s3://bucket/prefix/"


def test_redact_removes_secrets(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "verysecretvalue123")
    text = "failed with verysecretvalue123 at https://x/?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA/2026"
    cleaned = redact(text)
    assert "verysecretvalue123" not in cleaned
    assert "abcdef" not in cleaned and "AKIA" not in cleaned


def test_layout_uris_and_job_ids():
    world = "s3://ladis/"
    assert layout.reference_trial_uri(world, "ep") == "s3://ladis/trials/ep/reference"
    monitoring = layout.monitoring_uri(world, "ep")
    assert layout.results_uri(monitoring, "J") == "s3://ladis/monitoring/ep/J/results.json"
    moment = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    job_id = layout.job_id_for(moment)
    assert job_id == "2026-11-23T17-00-00Z"
    assert layout.parse_job_id(job_id) == moment
    with pytest.raises(ValueError):
        layout.parse_job_id("yesterday")


def _job(**overrides) -> JobResult:
    values = dict(
        job_id="2026-11-23T17-00-00Z",
        rate=97.0,
        endpoint="ep",
        world="s3://b",
        started_at="2026-11-23T17:00:01+00:00",
        finished_at="2026-11-23T17:00:02+00:00",
        first_step=0,
        layers={"avgpool_output_0": LayerResult(detection_rate=97.0, p_values=[0.001, 0.2])},
        incident=True,
        settings=JobSettings(layers=["avgpool_output_0"]),
        top_samples=[TopSample(step=3, score=4.2, predicted_class=7, p_value=0.001)],
    )
    values.update(overrides)
    return make_job(**values)


def test_job_result_round_trip():
    job = _job()
    data = json.loads(job.to_json())
    assert data["alert_threshold"] == pytest.approx(29.0)
    assert data["incident_rule"]["description"] == "window test p < 0.01"
    assert data["schema_version"] == 2 and data["window_test"] is None
    again = JobResult.from_json(job.to_json())
    assert again == job


def _evidence(p_value: float = 0.004) -> WindowEvidence:
    share = ShareEstimate(0.22, 0.14, 0.31, n_inputs=240)
    return WindowEvidence(
        p_value=p_value,
        layers={"avgpool_output_0": p_value},
        share=share,
        reference_rows=450,
        window_rows=240,
        duplicates=3,
        n_permutations=1000,
        statistics={"avgpool_output_0": {"gaussian×1": 0.02, "neighbours": p_value}},
        classes=[ClassEvidence(7, 45, 30, share), ClassEvidence(9, 0, 2, None)],
    )


def test_job_result_with_a_window_test_round_trips_and_decides_by_it():
    job = _job(
        window_test=_evidence(),
        baseline_range=(1.0, 7.0),
        baseline_splits=5,
        warnings=["something to know"],
    )
    data = json.loads(job.to_json())
    assert data["window_test"]["share"] == {
        "estimate": 0.22,
        "low": 0.14,
        "high": 0.31,
        "level": 0.95,
        "n_inputs": 240,
        "lambda": 0.5,
        "method": "storey",
    }
    assert data["baseline_range"] == [1.0, 7.0]
    again = JobResult.from_json(job.to_json())
    assert again == job and again.window_p_value == 0.004
    rule = IncidentRule()
    assert rule.decide(0.004, 0.0, 0.0) and not rule.decide(0.02, 100.0, 0.0)
    assert not rule.decide(None, 100.0, 0.0)
    assert IncidentRule(alpha=0.05).decide(0.02, 0.0, 0.0)


def test_a_schema_1_result_still_loads_and_keeps_its_rule():
    document = json.loads(_job().to_json())
    for key in ("window_test", "baseline_range", "baseline_splits", "warnings"):
        document.pop(key)
    for key in ("alpha", "basis"):
        document["incident_rule"].pop(key)
    document["schema_version"] = 1
    old = JobResult.from_dict(document)
    assert old.window_test is None and old.window_p_value is None
    assert old.incident_rule.basis == "detection-rate"
    assert old.incident_rule.describe().startswith("detection rate >")
    assert old.incident_rule.decide(None, 97.0, 4.0)
    assert old.schema_version == 1 and old.baseline_splits == 1 and old.warnings == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"p_value": 0.0}, "malformed"),
        ({"share": {"estimate": 0.5, "low": 0.6, "high": 0.4}}, "share estimate"),
        ({"share": None}, "malformed"),
    ],
)
def test_a_malformed_window_test_is_an_input_error(change, message):
    document = json.loads(_job(window_test=_evidence()).to_json())
    document["window_test"].update(change)
    with pytest.raises(InputError, match=message):
        JobResult.from_dict(document, source="results.json")


def test_job_result_nan_becomes_null():
    job = _job(detection_rate=float("nan"))
    assert json.loads(job.to_json())["detection_rate"] is None


def test_incident_rule_threshold():
    rule = IncidentRule(margin_points=25, min_rate=20)
    assert rule.threshold(None) == 25
    assert rule.threshold(10) == 35
    assert not rule.is_incident(30, 10)
    assert rule.is_incident(36, 10)
    assert not rule.is_incident(None, 0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"job_id": "x"}', "missing field"),
    ],
)
def test_job_result_rejects_corrupt_documents(text, message):
    with pytest.raises(InputError, match=message):
        JobResult.from_json(text, source="s3://b/x/results.json")


def test_local_storage_round_trip(tmp_path):
    root = str(tmp_path / "world")
    target = layout.join(root, "a", "b.json")
    assert store.write_json(target, {"x": 1})
    assert store.read_json(target) == {"x": 1}
    assert store.exists(target)
    assert not store.write_json(target, {"x": 2}, if_absent=True)
    assert store.read_json(target) == {"x": 1}
    store.write_bytes(layout.join(root, "a", "c.bin"), b"123")
    store.write_bytes(layout.join(root, "d", "e.bin"), b"4")
    listed = [info.uri for info in store.list_objects(root)]
    assert listed == sorted(listed) and len(listed) == 3
    after = store.list_objects(root, start_after=layout.join(root, "a", "b.json"))
    assert [i.uri.rsplit("/", 1)[-1] for i in after] == ["c.bin", "e.bin"]
    assert store.list_children(root) == ["a", "d"]
    mirror = tmp_path / "mirror"
    assert sorted(store.mirror_prefix(root, mirror)) == ["a/b.json", "a/c.bin", "d/e.bin"]
    assert store.mirror_prefix(root, mirror) == []
    store.delete(target)
    assert not store.exists(target)


def test_local_storage_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        store.read_bytes(str(tmp_path / "missing.json"))
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{oops")
    with pytest.raises(StorageError, match="corrupt.json is not valid JSON"):
        store.read_json(str(corrupt))
    with pytest.raises(StorageError, match="no bucket"):
        store.split_s3("s3:///key")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-23T17:00:00Z", datetime(2026, 11, 23, 17, tzinfo=UTC)),
        ("2026-11-23T18:00+01:00", datetime(2026, 11, 23, 17, tzinfo=UTC)),
        ("2026-11-23T17:00", datetime(2026, 11, 23, 17, tzinfo=UTC)),
        ("2026-11-23T17-00-00Z", datetime(2026, 11, 23, 17, tzinfo=UTC)),
    ],
)
def test_parse_time_accepts_iso_and_job_ids(text, expected):
    assert layout.parse_time(text) == expected


def test_parse_time_rejects_other_text():
    with pytest.raises(ValueError):
        layout.parse_time("yesterday")


@pytest.mark.parametrize(
    "text",
    [
        "x-amz-security-token:IQoJsecretTOKEN123==\n",
        "headers={'X-Amz-Security-Token': b'IQoJsecretTOKEN123==', 'X': b'1'}",
        "'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAX/1/us/s3/aws4_request, "
        "SignedHeaders=host, Signature=" + "ab" * 32 + "'",
        "DEBUG:botocore.auth:Signature:\n" + "cd" * 32,
        "aws_session_token = IQoJsecretTOKEN123==",
        "aws_secret_access_key=wJalrXUtnFEMIsecretKEY",
    ],
)
def test_redact_removes_tokens_headers_and_signatures_from_any_source(text):
    cleaned = redact(text)
    for secret in ("IQoJsecretTOKEN123", "ab" * 32, "cd" * 32, "wJalrXUtnFEMIsecretKEY", "AKIAX"):
        assert secret not in cleaned, cleaned
    assert "***" in cleaned


def test_the_redacting_filter_cleans_messages_arguments_and_tracebacks(caplog):
    import logging

    from ladis_core.config import RedactingFilter

    logger = logging.getLogger("ladis.test.redact")
    caplog.handler.addFilter(RedactingFilter())
    try:
        raise RuntimeError("x-amz-security-token:IQoJfromTRACEBACK")
    except RuntimeError:
        logger.exception("request %s", {"X-Amz-Security-Token": b"IQoJfromARGS"})
    text = caplog.text
    assert "IQoJfromTRACEBACK" not in text and "IQoJfromARGS" not in text
