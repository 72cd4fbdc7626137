"""The endpoint's Prometheus metrics (``GET /metrics``, the text exposition format).

- ``ladis_endpoint_responses_total{path,code}``: answers by path (``/invocations``,
  ``/ping``, ``/metrics``, ``other``) and HTTP status;
- ``ladis_endpoint_captured_requests_total``: invocations recorded as a capture step;
- ``ladis_capture_steps_published``: steps the capture has uploaded this session;
- ``ladis_capture_steps_recorded`` / ``_steps_written`` / ``_steps_dropped`` /
  ``_steps_failed`` / ``_queue_waits`` / ``_queue_steps``: the capture queue
  (``ServingCapture.health``): what requests recorded, what the writer wrote, what a
  full queue dropped or held back, what is waiting;
- ``ladis_capture_upload_failing``: 1 while the last upload failed (the error itself
  stays in the server log: it may name storage).

Counts only: nothing from a request's body or headers becomes a label value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily

CONTENT_TYPE = CONTENT_TYPE_LATEST
_PATHS = ("/invocations", "/ping", "/metrics")

#: gauges read from the capture's health (counts of this session)
_CAPTURE_GAUGES = (
    ("steps_recorded", "Capture steps recorded by requests."),
    ("steps_written", "Capture steps written to the local staging folder."),
    ("steps_dropped", "Capture steps dropped because the capture queue was full."),
    ("steps_failed", "Capture steps given up after failing writes at close."),
    ("queue_waits", "Requests that waited for room in the capture queue (back-pressure)."),
    ("queue_steps", "Capture steps waiting to be written now."),
)


class _CaptureCollector:
    """Reads the capture's health at scrape time."""

    def __init__(self, health: Callable[[], dict[str, Any] | None]) -> None:
        self._health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = self._health()
        if health is None:
            return
        yield GaugeMetricFamily(
            "ladis_capture_steps_published",
            "Capture steps uploaded in this session.",
            value=float(health.get("steps_published") or 0),
        )
        for name, what in _CAPTURE_GAUGES:
            if name in health:
                yield GaugeMetricFamily(
                    f"ladis_capture_{name}", what, value=float(health.get(name) or 0)
                )
        yield GaugeMetricFamily(
            "ladis_capture_upload_failing",
            "1 while the capture's last upload failed.",
            value=1.0 if health.get("error") else 0.0,
        )


class ServingMetrics:
    """The counters of one endpoint, in their own registry."""

    def __init__(self, capture_health: Callable[[], dict[str, Any] | None]) -> None:
        self.registry = CollectorRegistry()
        self.responses = Counter(
            "ladis_endpoint_responses",
            "Answers of the endpoint by path and HTTP status.",
            ["path", "code"],
            registry=self.registry,
        )
        self.captured = Counter(
            "ladis_endpoint_captured_requests",
            "Invocations recorded as a capture step.",
            registry=self.registry,
        )
        self.registry.register(_CaptureCollector(capture_health))

    def answered(self, path: str, status: int) -> None:
        self.responses.labels(path if path in _PATHS else "other", str(int(status))).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
