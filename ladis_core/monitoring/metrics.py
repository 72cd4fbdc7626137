"""Monitoring metrics for CloudWatch: detection rate, baseline rate, request count.

A monitoring job publishes its headline numbers as CloudWatch metrics when asked to
(``--cloudwatch``), so that ordinary CloudWatch alarms and dashboards can follow LADIS.
Nothing is sent otherwise: :func:`publish_job_metrics` with ``enabled=False`` makes no
network call at all.

Metrics (namespace ``LADIS``, dimension ``Endpoint``; ``Layer`` as well for per-layer
rates), timestamped with the job's scheduled time:

- ``DetectionRate`` (Percent): the combined detection rate of the job;
- ``BaselineDetectionRate`` (Percent): the rate on natural data split in halves;
- ``Requests`` (Count): inference requests in the job's window;
- ``Incident`` (Count, 0 or 1): whether the job crossed the incident rule;
- ``LayerDetectionRate`` (Percent, per ``Layer``).

A rate that could not be computed (too few requests) is *not* sent: CloudWatch would
otherwise plot a false 0 %. ``Requests`` is always sent.

The client is boto3's ``cloudwatch`` client with the standard AWS settings
(``AWS_DEFAULT_REGION``, credentials, and ``AWS_ENDPOINT_URL_CLOUDWATCH`` for a
CloudWatch-compatible endpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ladis_core.config import S3Settings, redact
from ladis_core.errors import MetricsError
from ladis_core.monitoring.jobs import job_time
from ladis_core.monitoring.results import JobResult

DEFAULT_NAMESPACE = "LADIS"
#: CloudWatch accepts at most this many data points per PutMetricData call
_MAX_PER_CALL = 1000

log = logging.getLogger("ladis.metrics")


@dataclass(frozen=True)
class MetricDatum:
    """One CloudWatch data point (``value`` in ``unit``), with its dimensions."""

    name: str
    value: float
    unit: str
    dimensions: tuple[tuple[str, str], ...]
    timestamp: datetime

    def to_cloudwatch(self) -> dict[str, Any]:
        """The ``MetricData`` entry of boto3's ``put_metric_data``."""
        return {
            "MetricName": self.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
            "Timestamp": self.timestamp,
            "Value": float(self.value),
            "Unit": self.unit,
        }


def job_metrics(result: JobResult) -> list[MetricDatum]:
    """The data points describing ``result`` (pure; nothing is sent)."""
    when = job_time(result)
    if not isinstance(when, datetime):
        when = datetime.now(UTC)
    endpoint = (("Endpoint", result.endpoint or "unknown"),)
    points = [MetricDatum("Requests", float(result.requests), "Count", endpoint, when)]
    if result.detection_rate is not None:
        points.append(
            MetricDatum("DetectionRate", result.detection_rate, "Percent", endpoint, when)
        )
        points.append(
            MetricDatum("Incident", 1.0 if result.incident else 0.0, "Count", endpoint, when)
        )
    if result.baseline_detection_rate is not None:
        points.append(
            MetricDatum(
                "BaselineDetectionRate", result.baseline_detection_rate, "Percent", endpoint, when
            )
        )
    for name, layer in sorted(result.layers.items()):
        if layer.detection_rate is not None:
            dims = (*endpoint, ("Layer", name))
            points.append(
                MetricDatum("LayerDetectionRate", layer.detection_rate, "Percent", dims, when)
            )
    return points


def cloudwatch_client() -> Any:
    """A boto3 CloudWatch client for the current AWS environment."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
    )
    return boto3.session.Session().client(
        "cloudwatch", region_name=S3Settings.from_environment().region, config=config
    )


def publish_job_metrics(
    result: JobResult,
    *,
    enabled: bool,
    namespace: str = DEFAULT_NAMESPACE,
    client: Any = None,
) -> int:
    """Send :func:`job_metrics` of ``result`` to CloudWatch if ``enabled``.

    Returns the number of data points sent (0 when disabled: no client is even created).
    Raises :class:`MetricsError` when CloudWatch refuses or cannot be reached.
    """
    if not enabled:
        return 0
    points = job_metrics(result)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cw = client if client is not None else cloudwatch_client()
        for start in range(0, len(points), _MAX_PER_CALL):
            batch = points[start : start + _MAX_PER_CALL]
            cw.put_metric_data(Namespace=namespace, MetricData=[p.to_cloudwatch() for p in batch])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "") or exc.response.get(
            "ResponseMetadata", {}
        ).get("HTTPStatusCode", "")
        raise MetricsError(
            f"CloudWatch refused the metrics of job {result.job_id} (namespace {namespace!r}): {code}; "
            "check the credentials' cloudwatch:PutMetricData permission and AWS_DEFAULT_REGION"
        ) from None
    except (BotoCoreError, ConnectionError) as exc:
        raise MetricsError(
            f"cannot publish the metrics of job {result.job_id} to CloudWatch (namespace "
            f"{namespace!r}): {redact(str(exc))}"
        ) from None
    log.info(
        "published %d CloudWatch metrics for job %s (namespace %s)",
        len(points),
        result.job_id,
        namespace,
    )
    return len(points)


def cloudwatch_publisher(namespace: str = DEFAULT_NAMESPACE) -> Callable[[JobResult], int]:
    """A result publisher for :func:`~ladis_core.monitoring.job.run_job` that sends each
    committed job's metrics to CloudWatch under ``namespace``."""

    def publish(result: JobResult) -> int:
        return publish_job_metrics(result, enabled=True, namespace=namespace)

    return publish
