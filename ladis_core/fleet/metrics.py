"""Prometheus metrics of a fleet run (the text exposition format, ``prometheus_client``).

``fleet run --metrics-port 9108`` serves them at ``http://127.0.0.1:9108/metrics``. Per
endpoint (label ``endpoint``), from its latest window:

- ``ladis_detection_rate_percent``, ``ladis_baseline_detection_rate_percent`` (only once
  a window was tested: an untested window leaves the last value, never a false 0);
- ``ladis_window_requests`` (requests in the latest window) and ``ladis_requests_total``;
- ``ladis_incident`` (1 while the latest tested window is an incident, else 0);
- ``ladis_job_duration_seconds`` (a histogram of window run times);
- ``ladis_last_success_timestamp_seconds`` (Unix time of the latest written result);
- ``ladis_windows_total{status}`` (``ok``, ``exists``, ``failed``, ``skipped``) and
  ``ladis_window_failures_total``;

per alert channel (label ``channel``): ``ladis_alerts_total{kind,outcome}`` and
``ladis_alert_channel_failing`` (1 when its last delivery failed after its retries).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ladis_core.fleet.alerts import Delivery
from ladis_core.fleet.work import EXISTS, FAILED, OK, WindowOutcome

_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class FleetMetrics:
    """The fleet's metrics in their own registry (``registry``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r, ep = self.registry, ["endpoint"]
        self.detection_rate = Gauge(
            "ladis_detection_rate_percent",
            "Combined detection rate of the latest tested window.",
            ep,
            registry=r,
        )
        self.baseline = Gauge(
            "ladis_baseline_detection_rate_percent",
            "Baseline (false-positive) rate of the latest tested window.",
            ep,
            registry=r,
        )
        self.requests = Gauge(
            "ladis_window_requests", "Inference requests in the latest window.", ep, registry=r
        )
        self.requests_total = Counter(
            "ladis_requests", "Inference requests in the windows of this run.", ep, registry=r
        )
        self.incident = Gauge(
            "ladis_incident", "1 while the latest tested window is an incident.", ep, registry=r
        )
        self.duration = Histogram(
            "ladis_job_duration_seconds",
            "Run time of one window.",
            ep,
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "ladis_last_success_timestamp_seconds",
            "Unix time of the latest result written.",
            ep,
            registry=r,
        )
        self.windows = Counter(
            "ladis_windows", "Windows of this run by outcome.", ["endpoint", "status"], registry=r
        )
        self.failures = Counter("ladis_window_failures", "Failed window attempts.", ep, registry=r)
        self.alerts = Counter(
            "ladis_alerts",
            "Alert deliveries by kind and outcome.",
            ["channel", "kind", "outcome"],
            registry=r,
        )
        self.channel_failing = Gauge(
            "ladis_alert_channel_failing",
            "1 when the channel's last delivery failed.",
            ["channel"],
            registry=r,
        )

    def observe(self, outcome: WindowOutcome) -> None:
        """Account for one finished window attempt."""
        endpoint = outcome.endpoint
        self.windows.labels(endpoint, outcome.status).inc()
        if outcome.status == FAILED:
            self.failures.labels(endpoint).inc()
            return
        self.duration.labels(endpoint).observe(outcome.duration_s)
        result = outcome.result
        if result is None or outcome.status not in (OK, EXISTS):
            return
        self.requests.labels(endpoint).set(result.requests)
        if outcome.status == OK:
            self.requests_total.labels(endpoint).inc(result.requests)
            self.last_success.labels(endpoint).set(time.time())
        if result.detection_rate is not None:
            self.detection_rate.labels(endpoint).set(result.detection_rate)
            self.incident.labels(endpoint).set(1 if result.incident else 0)
        if result.baseline_detection_rate is not None:
            self.baseline.labels(endpoint).set(result.baseline_detection_rate)

    def observe_delivery(self, delivery: Delivery) -> None:
        if delivery.skipped:
            return
        self.alerts.labels(delivery.channel, delivery.kind, "ok" if delivery.ok else "failed").inc()
        self.channel_failing.labels(delivery.channel).set(0 if delivery.ok else 1)

    def exposition(self) -> bytes:
        """The metrics in the text exposition format."""
        return generate_latest(self.registry)

    def serve(self, port: int, *, host: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns the server
        (``.shutdown()`` stops it)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
