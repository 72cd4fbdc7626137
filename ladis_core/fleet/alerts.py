"""Alerts on incident transitions: when an endpoint turns into an incident, and when it
turns quiet again.

The transitions follow from the stored results alone (:func:`transitions`), so two
overlapping fleet runs agree on them; an incident *opens* at the first job with
``JobResult.incident`` and *resolves* at the first job that is quiet for
``quiet_period`` after the incident's last job. While it is open, more incident jobs send
nothing: one alert per incident, and again only after the quiet period. Windows that
could not be tested (too few requests) change nothing.

Each delivery is recorded in S3 beside the job::

    <output>/<job-id>/alerts/<channel>.<kind>/claim.json        who sends it (written once)
    <output>/<job-id>/alerts/<channel>.<kind>/attempt-<n>.json  every try: ok, answer or error
    <output>/_state/alerts.json                                  the last outcome per channel

The claim is a conditional create, so one transition is sent once per channel even when
two fleet runs evaluate it. A delivery is tried ``retries + 1`` times with exponential
backoff; the last outcome per channel (``_state/alerts.json``) is what ``fleet status``
and the overview page show as a failing channel.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ladis_core import store
from ladis_core.errors import AlertDeliveryError, DataNotFoundError, LadisError
from ladis_core.fleet.channels import Alert, send
from ladis_core.fleet.config import NAME, AlertChannel
from ladis_core.monitoring.jobs import job_time
from ladis_core.monitoring.results import JobResult
from ladis_core.store import layout

log = logging.getLogger("ladis.alerts")

INCIDENT, RESOLVED = "incident", "resolved"
CHANNEL_STATE = "_state/alerts.json"


@dataclass(frozen=True)
class Transition:
    """The job at which an endpoint's incident state changed (``kind``)."""

    kind: str
    job: JobResult


@dataclass(frozen=True)
class Delivery:
    """The outcome of one alert on one channel (``attempts`` tries; ``skipped`` when
    another run had claimed it)."""

    channel: str
    kind: str
    job_id: str
    ok: bool
    attempts: int
    detail: str
    skipped: bool = False


def transitions(jobs: Sequence[JobResult], *, quiet_period: timedelta) -> list[Transition]:
    """The transitions of one endpoint's jobs (sorted by :func:`sort_jobs`)."""
    found: list[Transition] = []
    is_open, last_incident = False, None
    for job in jobs:
        moment = job_time(job)
        if job.detection_rate is None or not isinstance(moment, datetime):
            continue  # untested windows and unreadable times change nothing
        if job.incident:
            if not is_open:
                found.append(Transition(INCIDENT, job))
                is_open = True
            last_incident = moment
        elif is_open and last_incident is not None and moment - last_incident >= quiet_period:
            found.append(Transition(RESOLVED, job))
            is_open = False
    return found


def alert_for(transition: Transition, output: str, endpoint: str) -> Alert:
    job = transition.job
    test = job.window_test
    share = None if test is None or not test.share.n_inputs else test.share
    return Alert(
        kind=transition.kind,
        endpoint=endpoint,
        job_id=job.job_id,
        scheduled_at=job.scheduled_at,
        detection_rate=job.detection_rate,
        baseline_detection_rate=job.baseline_detection_rate,
        alert_threshold=job.alert_threshold if job.detection_rate is not None else None,
        requests=job.requests,
        results=layout.results_uri(output, job.job_id),
        window_p_value=None if test is None else test.p_value,
        crafted_share=None
        if share is None
        else {
            "estimate": share.estimate,
            "low": share.low,
            "high": share.high,
            "level": share.level,
        },
        rule=job.incident_rule.describe(),
    )


def deliveries_uri(output: str, job_id: str, channel: str, kind: str) -> str:
    return layout.join(layout.job_uri(output, job_id), "alerts", f"{channel}.{kind}")


def deliver(
    alert: Alert,
    channel: AlertChannel,
    *,
    output: str,
    sender: Callable[[Alert, AlertChannel], str] = send,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Claim, send with retries and record one alert on one channel."""
    folder = deliveries_uri(output, alert.job_id, channel.name, alert.kind)
    claim = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "claimed_at": _now_iso(),
        "channel": channel.name,
        "kind": alert.kind,
    }
    if not store.write_json(layout.join(folder, "claim.json"), claim, if_absent=True):
        return Delivery(
            channel.name, alert.kind, alert.job_id, True, 0, "sent by another run", True
        )
    detail, ok, attempt = "", False, 0
    for attempt in range(1, channel.retries + 2):
        try:
            detail, ok = sender(alert, channel), True
        except AlertDeliveryError as exc:
            detail = str(exc)
        _record(folder, attempt, ok, detail, channel)
        if ok:
            break
        if attempt <= channel.retries:
            sleep(channel.backoff_s * 2 ** (attempt - 1))
    outcome = Delivery(channel.name, alert.kind, alert.job_id, ok, attempt, detail)
    update_channel_state(output, outcome)
    (log.info if ok else log.error)(
        "alert %s of %s job %s on %s: %s after %d attempt(s)",
        alert.kind,
        alert.endpoint,
        alert.job_id,
        channel.name,
        "delivered" if ok else f"FAILED ({detail})",
        attempt,
    )
    return outcome


def _record(folder: str, attempt: int, ok: bool, detail: str, channel: AlertChannel) -> None:
    record = {
        "attempt": attempt,
        "at": _now_iso(),
        "ok": ok,
        "detail": detail,
        "channel": channel.name,
        "type": channel.type,
    }
    try:
        store.write_json(layout.join(folder, f"attempt-{attempt:02d}.json"), record)
    except LadisError as exc:
        log.warning("could not record alert attempt %d in %s: %s", attempt, folder, exc)


def channel_states(output: str) -> dict[str, dict]:
    """``{channel: {ok, at, detail, failures}}``: the last delivery outcome per channel of
    one endpoint (``{}`` when none was tried or the record is unreadable)."""
    uri = layout.join(output, CHANNEL_STATE)
    try:
        data = store.read_json(uri)
    except DataNotFoundError:
        return {}
    except LadisError as exc:
        log.warning("ignoring %s: %s", uri, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    # stored names are untrusted: only names a config could hold are shown anywhere
    return {
        k: v
        for k, v in data.items()
        if isinstance(k, str) and NAME.match(k) and isinstance(v, dict)
    }


def failing_channels(output: str) -> list[str]:
    """The channels whose last delivery for this endpoint failed after all retries."""
    return sorted(name for name, state in channel_states(output).items() if not state.get("ok"))


def update_channel_state(output: str, delivery: Delivery) -> None:
    """Record the outcome as the channel's last (read-modify-write: a lost update between
    two runs only delays what the status shows; the attempt records stay)."""
    states = channel_states(output)
    previous = states.get(delivery.channel, {})
    failures = 0 if delivery.ok else int(previous.get("failures", 0) or 0) + 1
    states[delivery.channel] = {
        "ok": delivery.ok,
        "at": _now_iso(),
        "kind": delivery.kind,
        "job_id": delivery.job_id,
        "detail": delivery.detail[:300],
        "failures": failures,
    }
    try:
        store.write_json(layout.join(output, CHANNEL_STATE), states)
    except LadisError as exc:
        log.warning("could not record the state of channel %s: %s", delivery.channel, exc)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
