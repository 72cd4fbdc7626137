"""Fleets: many endpoints monitored together (``python -m ladis_core fleet``).

- :mod:`~ladis_core.fleet.config`: ``fleet.toml`` (endpoints, defaults, alert channels),
  parsed strictly;
- :mod:`~ladis_core.fleet.grid`: the grid endpoint × window;
- :mod:`~ladis_core.fleet.work`: one window on a worker (:func:`run_window`);
- :mod:`~ladis_core.fleet.engines`: in-process or on a Dask cluster;
- :mod:`~ladis_core.fleet.run`: the driver (:func:`run_grid`): retries, alerts, metrics;
- :mod:`~ladis_core.fleet.alerts`, :mod:`~ladis_core.fleet.channels`: incident
  transitions, webhook and SMTP deliveries recorded in S3;
- :mod:`~ladis_core.fleet.metrics`: Prometheus metrics;
- :mod:`~ladis_core.fleet.status`: where each endpoint stands (``fleet status``, the
  dashboard's overview page).
"""

from ladis_core.fleet.config import (
    AlertChannel,
    EndpointSpec,
    FleetConfig,
    load_config,
    parse_config,
)
from ladis_core.fleet.grid import Window, floor_tick, ticks
from ladis_core.fleet.run import FleetSummary, run_grid
from ladis_core.fleet.status import EndpointStatus, endpoint_status, scan
from ladis_core.fleet.work import WindowOptions, WindowOutcome, run_window

__all__ = [
    "AlertChannel",
    "EndpointSpec",
    "EndpointStatus",
    "FleetConfig",
    "FleetSummary",
    "Window",
    "WindowOptions",
    "WindowOutcome",
    "endpoint_status",
    "floor_tick",
    "load_config",
    "parse_config",
    "run_grid",
    "run_window",
    "scan",
    "ticks",
]
