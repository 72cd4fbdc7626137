"""Incident transitions from stored results, payloads, signatures, retries with backoff
and the grid's ticks (no network: the senders here are functions)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from ladis_core.errors import AlertDeliveryError, InputError
from ladis_core.fleet.alerts import INCIDENT, RESOLVED, alert_for, deliver, transitions
from ladis_core.fleet.channels import payload, sign
from ladis_core.fleet.config import AlertChannel
from ladis_core.fleet.grid import floor_tick, ticks
from ladis_core.monitoring.results import IncidentRule
from tests.support.factories import make_job


def _jobs(flags: str):
    """One hourly job per letter: I incident, q quiet, - untested."""
    out = []
    for hour, flag in enumerate(flags):
        if flag == "-":
            out.append(make_job(hour, None))
        else:
            out.append(make_job(hour, 90.0 if flag == "I" else 5.0, incident=flag == "I"))
    return out


@pytest.mark.parametrize(
    ("flags", "quiet_h", "expected"),
    [
        ("qqIIIqq", 1, [(INCIDENT, 2), (RESOLVED, 5)]),
        ("qqIIIqq", 2, [(INCIDENT, 2), (RESOLVED, 6)]),
        ("qIqIqqq", 2, [(INCIDENT, 1), (RESOLVED, 5)]),  # a flap inside the quiet period
        ("qI--qq", 1, [(INCIDENT, 1), (RESOLVED, 4)]),  # untested windows change nothing
        ("IqqqqI", 1, [(INCIDENT, 0), (RESOLVED, 1), (INCIDENT, 5)]),
        ("qqqq", 1, []),
    ],
)
def test_one_alert_per_incident_and_again_only_after_the_quiet_period(
    flags, quiet_h, expected
) -> None:
    jobs = _jobs(flags)
    found = transitions(jobs, quiet_period=timedelta(hours=quiet_h))
    assert [(t.kind, jobs.index(t.job)) for t in found] == expected


def test_payloads_and_signature() -> None:
    job = make_job(3, 90.0, incident=True, endpoint="ep")
    alert = alert_for(
        transitions([job], quiet_period=timedelta(hours=1))[0], "s3://w/monitoring/ep", "ep"
    )
    body = json.loads(payload(alert, "json"))
    assert body["kind"] == "incident" and body["job_id"] == job.job_id
    assert body["results"] == f"s3://w/monitoring/ep/{job.job_id}/results.json"
    slack = json.loads(payload(alert, "slack"))
    assert set(slack) == {"text", "blocks"} and "incident on endpoint ep" in slack["text"]
    raw = payload(alert, "json")
    expected = hmac.new(b"k", b"1700000000." + raw, hashlib.sha256).hexdigest()
    assert sign(raw, b"k", 1700000000) == f"sha256={expected}"


def test_an_alert_says_what_decided_the_incident() -> None:
    """Incidents are decided by the window test: the alert carries its p-value, the
    crafted share and the rule, so a detection rate below its threshold is not a puzzle."""
    from ladis_core.monitoring.evidence import WindowEvidence
    from ladis_core.stats import ShareEstimate

    evidence = WindowEvidence(
        p_value=0.0004,
        layers={"avgpool_output_0": 0.0004},
        share=ShareEstimate(0.22, 0.14, 0.31, n_inputs=220),
        reference_rows=450,
        window_rows=220,
    )
    job = make_job(3, 12.0, incident=True, endpoint="ep", window_test=evidence)
    alert = alert_for(transitions([job], quiet_period=timedelta(hours=1))[0], "s3://w/m/ep", "ep")
    body = json.loads(payload(alert, "json"))
    assert body["window_p_value"] == 0.0004 and body["rule"] == "window test p < 0.01"
    assert body["crafted_share"] == {"estimate": 0.22, "low": 0.14, "high": 0.31, "level": 0.95}
    assert (
        "window test p = 0.0004; 14–31 % of requests look crafted; detection rate 12%"
        in (body["summary"])
    )
    assert "rule: window test p < 0.01" in json.loads(payload(alert, "slack"))["text"]
    # a result written before the window test: no p-value, no share, the rate's rule
    old = make_job(3, 90.0, incident=True, incident_rule=IncidentRule(basis="detection-rate"))
    alert = alert_for(transitions([old], quiet_period=timedelta(hours=1))[0], "s3://w/m/x", "x")
    body = json.loads(payload(alert, "json"))
    assert body["window_p_value"] is None and body["crafted_share"] is None
    assert "p =" not in body["summary"] and "rule: detection rate > max(20%" in body["summary"]


def test_retries_back_off_and_every_attempt_is_recorded(tmp_path) -> None:
    channel = AlertChannel(name="hook", type="webhook", url="http://x", retries=2, backoff_s=0.5)
    job = make_job(0, 90.0, incident=True)
    alert = alert_for(transitions([job], quiet_period=timedelta(hours=1))[0], str(tmp_path), "ep")
    tries, waits = [], []

    def flaky(_alert, _channel):
        tries.append(1)
        if len(tries) < 3:
            raise AlertDeliveryError("webhook 'hook' answered HTTP 503")
        return "HTTP 200"

    delivery = deliver(alert, channel, output=str(tmp_path), sender=flaky, sleep=waits.append)
    assert delivery.ok and delivery.attempts == 3 and waits == [0.5, 1.0]
    folder = tmp_path / job.job_id / "alerts" / "hook.incident"
    records = [json.loads((folder / f"attempt-0{k}.json").read_text()) for k in (1, 2, 3)]
    assert [r["ok"] for r in records] == [False, False, True]
    # the same transition again (another run): claimed already, nothing sent
    again = deliver(alert, channel, output=str(tmp_path), sender=flaky, sleep=waits.append)
    assert again.skipped and len(tries) == 3


def test_ticks_of_a_backfill() -> None:
    start = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert floor_tick(start, hour) == datetime(2026, 11, 23, 16, tzinfo=UTC)
    assert [t.hour for t in ticks(start, start + 3 * hour, hour)] == [17, 18, 19]
    with pytest.raises(InputError, match="before --from"):
        ticks(start, start - hour, hour)
    with pytest.raises(InputError, match="at most"):
        ticks(start, start + timedelta(days=30), timedelta(seconds=1))
