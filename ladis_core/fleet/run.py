"""The fleet driver: runs the grid on an engine, retries failed windows, alerts, counts.

:func:`run_grid` keeps one queue per endpoint (its windows oldest first) and has at most
one window per endpoint running at a time, the head of every queue at once, so the
engine's workers are shared by the endpoints. A failed window is retried after
``retry_backoff · 2^k`` (``retries`` times); a window whose worker died (the future
itself fails) counts as a failed attempt and is retried the same way, and the claims let
the retry take over the dead worker's steps at once. A window that still fails leaves
the endpoint's later windows of this run ``skipped`` (they would test its traffic) and
the others go on. After every written or existing result the endpoint's incident
transitions are checked and alerts sent (in a small thread pool, so slow channels do not
hold the grid).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ladis_core.config import redact
from ladis_core.errors import LadisError
from ladis_core.fleet import alerts
from ladis_core.fleet.config import EndpointSpec, FleetConfig
from ladis_core.fleet.grid import Window, plan
from ladis_core.fleet.metrics import FleetMetrics
from ladis_core.fleet.work import (
    EXISTS,
    FAILED,
    OK,
    SKIPPED,
    WindowOptions,
    WindowOutcome,
    record_failure,
    run_window,
)
from ladis_core.monitoring.jobs import load_jobs, sort_jobs
from ladis_core.monitoring.results import JobResult
from ladis_core.progress import ProgressCallback, report

log = logging.getLogger("ladis.fleet")

#: how far back the alert state of an endpoint is read when a run starts
ALERT_LOOKBACK = timedelta(days=7)


@dataclass
class FleetSummary:
    """What one grid run did (``outcomes``: the final outcome of every window)."""

    outcomes: list[WindowOutcome] = field(default_factory=list)
    retried: int = 0
    deliveries: list[alerts.Delivery] = field(default_factory=list)
    duration_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    def describe(self) -> str:
        sent = sum(1 for d in self.deliveries if d.ok and not d.skipped)
        lost = sum(1 for d in self.deliveries if not d.ok)
        return (
            f"{len(self.outcomes)} windows in {self.duration_s:.1f} s: {self.count(OK)} written, "
            f"{self.count(EXISTS)} already done, {self.failed} failed, {self.count(SKIPPED)} "
            f"skipped, {self.retried} retried; alerts: {sent} sent, {lost} failed"
        )


class _Alerting:
    """Alert state per endpoint (its recent jobs) and the deliveries in flight."""

    def __init__(self, config: FleetConfig, metrics: FleetMetrics | None) -> None:
        self.config = config
        self.metrics = metrics
        self.history: dict[str, list[JobResult]] = {}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ladis-alerts")
        self.pending: list[Future] = []

    def consider(self, spec: EndpointSpec, at: datetime, result: JobResult) -> None:
        if not spec.alerts:
            return
        jobs = self.history.get(spec.name)
        if jobs is None:
            jobs = load_jobs(spec.output, start=at - ALERT_LOOKBACK - self.config.quiet_period)
        if all(j.job_id != result.job_id for j in jobs):
            jobs = sort_jobs([*jobs, result])
        self.history[spec.name] = jobs
        for change in alerts.transitions(jobs, quiet_period=self.config.quiet_period):
            if change.job.job_id != result.job_id:
                continue
            alert = alerts.alert_for(change, spec.output, spec.name)
            for name in spec.alerts:
                channel = self.config.channel(name)
                self.pending.append(
                    self.pool.submit(alerts.deliver, alert, channel, output=spec.output)
                )

    def finish(self, summary: FleetSummary) -> None:
        wait_all(self.pending)
        for future in self.pending:
            try:
                delivery = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. S3 failed while claiming: not sent
                log.error("alert delivery failed before sending: %s", redact(str(exc)))
                continue
            summary.deliveries.append(delivery)
            if self.metrics is not None:
                self.metrics.observe_delivery(delivery)
        self.pending.clear()
        self.pool.shutdown(wait=True)


def run_grid(
    config: FleetConfig,
    moments: list[datetime],
    engine: Any,
    *,
    options: WindowOptions | None = None,
    metrics: FleetMetrics | None = None,
    progress: ProgressCallback | None = None,
    on_outcome: Callable[[WindowOutcome], None] | None = None,
) -> FleetSummary:
    """Run every endpoint of ``config`` at every time in ``moments``. Progress stage:
    ``windows``."""
    options = options or WindowOptions(lease_s=config.lease_s, cache_dir=config.cache_dir)
    specs = {spec.name: spec for spec in config.endpoints}
    queues = {q[0].endpoint: deque(q) for q in plan(config.endpoints, moments) if q}
    total = sum(len(q) for q in queues.values())
    summary, alerting = FleetSummary(), _Alerting(config, metrics)
    running: dict[Any, tuple[Window, int]] = {}
    retries: list[tuple[float, int, Window, int]] = []  # (due, tiebreak, window, attempt)
    started = time.monotonic()

    def submit(window: Window, attempt: int) -> None:
        future = engine.submit(run_window, specs[window.endpoint], window.at, options)
        running[future] = (window, attempt)

    def finish(outcome: WindowOutcome) -> None:
        summary.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        report(
            progress,
            "windows",
            len(summary.outcomes),
            total,
            f"{outcome.endpoint} {outcome.job_id}: {outcome.status}",
        )

    report(progress, "windows", 0, total, engine.describe())
    for queue in queues.values():
        submit(queue.popleft(), 0)
    try:
        while running or retries:
            now = time.monotonic()
            while retries and retries[0][0] <= now:
                _, _, window, attempt = heapq.heappop(retries)
                submit(window, attempt)
            if not running:
                time.sleep(max(0.0, retries[0][0] - time.monotonic()))
                continue
            wait_s = max(0.05, retries[0][0] - now) if retries else None
            for future in engine.wait_any(list(running), timeout_s=wait_s):
                window, attempt = running.pop(future)
                outcome = _outcome_of(engine, future, window, specs[window.endpoint])
                if metrics is not None:
                    metrics.observe(outcome)
                spec = specs[window.endpoint]
                if outcome.status == FAILED and attempt < config.retries:
                    summary.retried += 1
                    delay = config.retry_backoff_s * 2**attempt
                    log.warning(
                        "window %s %s failed (%s); retry %d of %d in %.0f s",
                        window.endpoint,
                        outcome.job_id,
                        outcome.message,
                        attempt + 1,
                        config.retries,
                        delay,
                    )
                    heapq.heappush(
                        retries, (time.monotonic() + delay, id(window), window, attempt + 1)
                    )
                    continue
                finish(outcome)
                queue = queues[window.endpoint]
                if outcome.status == FAILED:
                    log.error(
                        "window %s %s failed for good: %s",
                        window.endpoint,
                        outcome.job_id,
                        outcome.message,
                    )
                    while queue:
                        later = queue.popleft()
                        finish(
                            WindowOutcome(
                                later.endpoint,
                                later.job_id,
                                SKIPPED,
                                0.0,
                                message=f"window {outcome.job_id} failed",
                            )
                        )
                    continue
                if outcome.result is not None:
                    try:
                        alerting.consider(spec, window.at, outcome.result)
                    except LadisError as exc:
                        log.error(
                            "alerts of %s %s not evaluated: %s",
                            window.endpoint,
                            outcome.job_id,
                            exc,
                        )
                if queue:
                    submit(queue.popleft(), 0)
    finally:
        alerting.finish(summary)
        summary.duration_s = time.monotonic() - started
    return summary


def _outcome_of(engine: Any, future: Any, window: Window, spec: EndpointSpec) -> WindowOutcome:
    """The window's outcome; a future that failed itself (its worker died, the task could
    not be sent) is a failed attempt, recorded beside the job like any other."""
    try:
        return engine.value(future)
    except Exception as exc:  # noqa: BLE001 - whatever the engine raised, the grid goes on
        outcome = WindowOutcome(
            window.endpoint,
            window.job_id,
            FAILED,
            0.0,
            error_kind="worker-lost",
            message=f"the worker running it was lost ({type(exc).__name__}: {redact(str(exc))[:200]})",
        )
        record_failure(spec.output, outcome)
        return outcome
