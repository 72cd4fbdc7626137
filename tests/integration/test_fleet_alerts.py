"""Alerts on incident transitions, to real receivers: an HTTP server for the webhooks (JSON
with an HMAC signature, and a Slack-compatible payload) and a real SMTP server
(``aiosmtpd``, its own process, delivering into a Maildir); a channel pointing at a
closed port keeps failing and is reported."""

from __future__ import annotations

import hashlib
import hmac
import json
import mailbox
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ladis_core import fleet, store
from ladis_core.devtools.ports import find_free_port, port_answers
from ladis_core.fleet.alerts import channel_states, deliveries_uri
from ladis_core.fleet.engines import LocalEngine
from ladis_core.fleet.metrics import FleetMetrics
from ladis_core.fleet.status import status_table
from ladis_core.store import layout
from tests.support.fleet_world import FleetTrials, fleet_toml, parse, upload

pytestmark = pytest.mark.integration

SECRET = "test-hook-secret-4f1c"
HOURS = [f"2026-11-23T{h:02d}:00:00Z" for h in range(10, 15)]


class Receiver:
    """A real HTTP server recording every POST (path, headers, body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str) -> list[tuple[dict, bytes]]:
        return [(h, b) for p, h, b in self.posts if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def smtp_server(tmp_path: Path):
    """``aiosmtpd`` on a free port, delivering into a Maildir; stopped by PID."""
    port, maildir = find_free_port(), tmp_path / "maildir"
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
         "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not port_answers(port, "127.0.0.1") and time.monotonic() < deadline:
            assert process.poll() is None, "aiosmtpd exited"
            time.sleep(0.1)
        yield port, maildir
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _verify(headers: dict, body: bytes) -> None:
    stamp = headers["X-Ladis-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Ladis-Signature"] == f"sha256={expected.hexdigest()}"
    assert abs(int(stamp) - time.time()) < 600


def test_incident_and_quiet_again_alert_once_per_channel_and_a_dead_channel_is_shown(
    s3_bucket: str,
    fleet_trials: FleetTrials,
    receiver: Receiver,
    smtp_server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LADIS_TEST_HOOK_SECRET", SECRET)
    smtp_port, maildir = smtp_server
    dead = find_free_port()
    hook = f"http://127.0.0.1:{receiver.port}"
    channels = f"""
[[alert]]
name = "hook"
type = "webhook"
url = "{hook}/hook"
secret_env = "LADIS_TEST_HOOK_SECRET"

[[alert]]
name = "slack"
type = "webhook"
url = "{hook}/slack"
format = "slack"

[[alert]]
name = "mail"
type = "smtp"
host = "127.0.0.1"
port = {smtp_port}
sender = "ladis@example.org"
to = ["oncall@example.org"]

[[alert]]
name = "dead"
type = "webhook"
url = "http://127.0.0.1:{dead}/hook"
retries = 2
backoff = "0.1s"
"""
    text = fleet_toml(s3_bucket, ["ep0", "ep1"], extra=channels).replace(
        'every = "1h"', 'every = "1h"\nquiet_period = "2h"'
    )
    text = text.replace('name = "ep0"', 'name = "ep0"\nalerts = ["hook", "slack", "mail"]')
    text = text.replace('name = "ep1"', 'name = "ep1"\nalerts = ["dead"]')
    config = parse(text)
    # ep0: clean, attack, attack, clean (1 h after: still within the quiet period), clean
    plan = {
        "ep0": [fleet_trials.clean[0], fleet_trials.shifted[0], fleet_trials.shifted[1],
                fleet_trials.clean[2], fleet_trials.clean[3]],
        "ep1": [fleet_trials.clean[1], fleet_trials.shifted[0]],
    }  # fmt: skip
    for name in plan:
        upload(fleet_trials.reference, layout.reference_trial_uri(s3_bucket, name))
    metrics = FleetMetrics()
    engine = LocalEngine(workers=2)
    options = fleet.WindowOptions(cache_dir=str(tmp_path / "cache"))
    summaries = []
    try:
        for hour, at in enumerate(HOURS):
            for name, windows in plan.items():
                if hour < len(windows):
                    upload(
                        fleet_trials.inference,
                        layout.inference_trial_uri(s3_bucket, name),
                        windows[hour],
                    )
            summaries.append(
                fleet.run_grid(
                    config, [layout.parse_time(at)], engine, options=options, metrics=metrics
                )
            )
        again = fleet.run_grid(config, [layout.parse_time(HOURS[1])], engine, options=options)
    finally:
        engine.close()

    out0, out1 = (layout.monitoring_uri(s3_bucket, n) for n in ("ep0", "ep1"))
    ids = [layout.job_id_for(layout.parse_time(h)) for h in HOURS]
    from ladis_core.monitoring.jobs import load_jobs

    jobs0 = load_jobs(out0)
    assert [j.incident for j in jobs0] == [False, True, True, False, False]
    assert all(j.detection_rate is not None for j in jobs0)

    # the signed JSON webhook: the incident at hour 1, quiet again at hour 4 (not 3)
    posts = receiver.on("/hook")
    bodies = [json.loads(b) for _, b in posts]
    assert [(b["kind"], b["job_id"]) for b in bodies] == [
        ("incident", ids[1]),
        ("resolved", ids[4]),
    ]
    for headers, body in posts:
        _verify(headers, body)
    assert (
        bodies[0]["endpoint"] == "ep0"
        and bodies[0]["detection_rate"] > bodies[0]["alert_threshold"]
    )
    assert bodies[0]["results"] == layout.results_uri(out0, ids[1])
    # the Slack-compatible payload, unsigned
    slack = [json.loads(b) for _, b in receiver.on("/slack")]
    assert len(slack) == 2 and "incident on endpoint ep0" in slack[0]["text"]
    assert slack[0]["blocks"][0]["type"] == "section"
    assert "X-Ladis-Signature" not in receiver.on("/slack")[0][0]
    # e-mail through the real SMTP server
    mails = list(mailbox.Maildir(maildir))
    assert sorted(m["Subject"] for m in mails) == [
        "LADIS: endpoint ep0 is quiet again",
        "LADIS: incident on endpoint ep0",
    ]
    assert all(m["To"] == "oncall@example.org" for m in mails)
    # re-running an alerted window sends nothing more
    assert [o.status for o in again.outcomes] == ["exists", "exists"]
    assert again.deliveries and all(d.skipped for d in again.deliveries)

    # every attempt is recorded beside the job
    folder = deliveries_uri(out0, ids[1], "hook", "incident")
    attempt = store.read_json(layout.join(folder, "attempt-01.json"))
    assert attempt["ok"] is True and attempt["detail"] == "HTTP 200"
    # the dead channel: 3 attempts, all failed, and it is shown as failing
    folder = deliveries_uri(out1, ids[1], "dead", "incident")
    attempts = [store.read_json(i.uri) for i in store.list_objects(folder) if "attempt-" in i.uri]
    assert [a["attempt"] for a in attempts] == [1, 2, 3] and not any(a["ok"] for a in attempts)
    assert "cannot reach webhook 'dead'" in attempts[0]["detail"]
    assert channel_states(out1)["dead"]["failures"] == 1
    status = fleet.endpoint_status("ep1", out1)
    assert status.failing_channels == ("dead",) and status.open_incident
    assert "alert channel dead" in status_table([status])
    exposition = metrics.exposition().decode()
    assert 'ladis_alert_channel_failing{channel="dead"} 1.0' in exposition
    assert 'ladis_alerts_total{channel="hook",kind="incident",outcome="ok"} 1.0' in exposition
    # no secret and no channel URL in anything stored
    everything = b"".join(
        store.read_bytes(i.uri) for i in store.list_objects(out1) if i.uri.endswith(".json")
    )
    everything += b"".join(
        store.read_bytes(i.uri) for i in store.list_objects(out0) if "/alerts" in i.uri
    )
    assert SECRET.encode() not in everything and str(dead).encode() not in everything
    assert hook.encode() not in everything
    assert sum(len(s.deliveries) for s in summaries) == 2 * 3 + 1
