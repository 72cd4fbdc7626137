"""Factories of monitoring results for tests: one place that knows how to build a
:class:`~ladis_core.monitoring.results.JobResult`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ladis_core.monitoring.results import (
    STATUS_INSUFFICIENT,
    STATUS_OK,
    IncidentRule,
    JobResult,
    JobSettings,
    LayerResult,
    TopSample,
)
from ladis_core.store import layout

#: hour 0 of the jobs the factories make (the demo's day)
T0 = datetime(2026, 11, 23, tzinfo=UTC)


def top_samples(first_step: int, count: int, *, classes: int = 2) -> list[TopSample]:
    """``count`` flagged inputs from ``first_step`` on, best first (scores 10, 9.95, …;
    p-values 0.001, 0.002, …; predicted classes cycling over ``classes``)."""
    return [
        TopSample(
            step=first_step + i,
            score=float(10 - 0.05 * i),
            predicted_class=i % classes,
            p_value=0.001 * (i + 1),
        )
        for i in range(count)
    ]


def layer(
    rate: float | None,
    *,
    baseline: float | None = 4.0,
    repeats: int = 0,
    seed: int = 0,
    dimension: int | None = 512,
) -> LayerResult:
    """One layer's result; ``repeats`` random p-values drawn from ``seed``."""
    p_values = np.random.default_rng(seed).random(repeats).tolist() if repeats else []
    return LayerResult(rate, baseline, 0.3 if rate is not None else None, p_values, dimension)


def make_job(
    hour: int = 0,
    rate: float | None = 50.0,
    *,
    job_id: str | None = None,
    baseline: float | None = 4.0,
    endpoint: str = "digits",
    world: str = "s3://w",
    requests: int = 250,
    first_step: int | None | object = ...,
    layers: Mapping[str, LayerResult] | None = None,
    n_top: int = 0,
    settings: JobSettings | None = None,
    incident: bool | None = None,
    **overrides: Any,
) -> JobResult:
    """A job scheduled ``hour`` hours after :data:`T0` (or named ``job_id``) as the
    monitoring job writes it: ``requests`` steps from ``first_step`` (default
    ``hour * requests``), one ``avgpool_output_0`` layer unless ``layers`` are given,
    ``n_top`` flagged inputs, incident by the default rule unless ``incident`` says.
    ``rate=None`` gives an untested window (``insufficient_data``). Any other field of
    :class:`JobResult` can be set through ``overrides``."""
    moment = layout.parse_job_id(job_id) if job_id else T0 + timedelta(hours=hour)
    rule = overrides.pop("incident_rule", IncidentRule())
    first = hour * requests if first_step is ... else first_step
    tested = rate is not None
    values: dict[str, Any] = dict(
        job_id=job_id or layout.job_id_for(moment),
        endpoint=endpoint,
        scheduled_at=moment.isoformat(),
        started_at=moment.isoformat(),
        finished_at=(moment + timedelta(seconds=30)).isoformat(),
        reference=layout.reference_trial_uri(world, endpoint),
        inference=layout.inference_trial_uri(world, endpoint),
        first_step=first,
        last_step=None if first is None else first + requests - 1,
        requests=requests,
        detection_rate=rate,
        baseline_detection_rate=baseline if tested else None,
        layers=dict(layers)
        if layers is not None
        else {"avgpool_output_0": layer(rate, baseline=baseline)},
        incident=rule.is_incident(rate, baseline) if incident is None else incident,
        incident_rule=rule,
        settings=settings or JobSettings(),
        top_samples=top_samples(first or 0, n_top),
        status=STATUS_OK if tested else STATUS_INSUFFICIENT,
        reason=None if tested else f"only {requests} requests (need 100)",
    )
    values.update(overrides)
    return JobResult(**values)


def capture_counts(
    *, recorded: int, published: int, upload_failing: bool, policy: str = "drop_oldest"
) -> dict[str, Any]:
    """The ``capture`` part of ``/ping`` for an endpoint that recorded ``recorded``
    requests (all written, none dropped or waiting) and published ``published``."""
    return {
        "steps_recorded": recorded,
        "steps_written": recorded,
        "steps_dropped": 0,
        "steps_failed": 0,
        "queue_policy": policy,
        "queue_waits": 0,
        "queue_steps": 0,
        "steps_published": published,
        "upload_failing": upload_failing,
    }
