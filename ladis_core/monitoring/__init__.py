"""Monitoring: the job that tests windows of traffic, its results and everything around them.

- :mod:`~ladis_core.monitoring.job`: :func:`run_job`, one window end to end (claims,
  analysis, writing results once, the bookmark);
- :mod:`~ladis_core.monitoring.window`, :mod:`~ladis_core.monitoring.analysis`,
  :mod:`~ladis_core.monitoring.baseline`: reading and analysing one window;
- :mod:`~ladis_core.monitoring.claims`, :mod:`~ladis_core.monitoring.bookmark`: exactly
  once under concurrency and crashes;
- :mod:`~ladis_core.monitoring.results`: :class:`JobResult`, the ``results.json`` format;
  :mod:`~ladis_core.monitoring.jobs`: reading results and scores back;
- :mod:`~ladis_core.monitoring.schedule`: ``--every``;
  :mod:`~ladis_core.monitoring.ondemand`: the dashboard's on-demand test;
  :mod:`~ladis_core.monitoring.triage`: analyst verdicts;
  :mod:`~ladis_core.monitoring.metrics`: CloudWatch;
  :mod:`~ladis_core.monitoring.processing`: the SageMaker Processing entry point;
  :mod:`~ladis_core.monitoring.world`: what a world holds (for the dashboard).
"""

from ladis_core.errors import ClaimTimeoutError, JobExistsError
from ladis_core.monitoring.analysis import TOP_K, analyse_window, class_names_for
from ladis_core.monitoring.bookmark import Bookmark, read_bookmark, write_bookmark
from ladis_core.monitoring.claims import STATE_DIR
from ladis_core.monitoring.clock import parse_time
from ladis_core.monitoring.job import DEFAULT_LEASE_S, derive_endpoint, run_job
from ladis_core.monitoring.jobs import SCORES_NAME, load_job, load_jobs, load_scores
from ladis_core.monitoring.protocol import validate_settings
from ladis_core.monitoring.schedule import ScheduleSummary, parse_interval, run_every
from ladis_core.monitoring.window import Window, resolve_layers

__all__ = [
    "DEFAULT_LEASE_S",
    "SCORES_NAME",
    "STATE_DIR",
    "TOP_K",
    "Bookmark",
    "ClaimTimeoutError",
    "JobExistsError",
    "ScheduleSummary",
    "Window",
    "analyse_window",
    "class_names_for",
    "derive_endpoint",
    "load_job",
    "load_jobs",
    "load_scores",
    "parse_interval",
    "parse_time",
    "read_bookmark",
    "resolve_layers",
    "run_every",
    "run_job",
    "validate_settings",
    "write_bookmark",
]
