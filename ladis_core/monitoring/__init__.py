"""Monitoring: the job that tests windows of traffic, its results and everything around them.

- :mod:`~ladis_core.monitoring.job`: :func:`run_job`, one window end to end (claims,
  analysis, writing results once, the bookmark);
- :mod:`~ladis_core.monitoring.window`: the reference and the window read from their
  trials; :mod:`~ladis_core.monitoring.analysis`: :func:`analyse_window`, the statistics
  of one window (:class:`WindowAnalysis`); :mod:`~ladis_core.monitoring.baseline`: the
  baseline rates and their cache; :mod:`~ladis_core.monitoring.protocol`: settings →
  statistics options; :mod:`~ladis_core.monitoring.assembly`: analysis → result;
- :mod:`~ladis_core.monitoring.claims`, :mod:`~ladis_core.monitoring.bookmark`: exactly
  once under concurrency and crashes;
- :mod:`~ladis_core.monitoring.results`: :class:`JobResult`, the ``results.json`` format;
  :mod:`~ladis_core.monitoring.scores`: :class:`WindowScores`, ``scores.json``;
  :mod:`~ladis_core.monitoring.jobs`: reading results back, in one order;
- :mod:`~ladis_core.monitoring.schedule`: ``--every``;
  :mod:`~ladis_core.monitoring.ondemand`: the dashboard's on-demand test;
  :mod:`~ladis_core.monitoring.triage`: analyst verdicts;
  :mod:`~ladis_core.monitoring.metrics`: CloudWatch;
  :mod:`~ladis_core.monitoring.world`: what a world holds (for the dashboard).
"""

from ladis_core.errors import ClaimTimeoutError, JobExistsError
from ladis_core.monitoring.analysis import TOP_K, WindowAnalysis, analyse_window
from ladis_core.monitoring.assembly import JobIdentity, class_names_for
from ladis_core.monitoring.baseline import BaselineCache, BaselineRates, baseline_rates
from ladis_core.monitoring.bookmark import Bookmark, read_bookmark, write_bookmark
from ladis_core.monitoring.claims import STATE_DIR, Claim, Claims
from ladis_core.monitoring.clock import parse_time
from ladis_core.monitoring.job import (
    DEFAULT_LEASE_S,
    ClaimPolicy,
    ResultPublisher,
    derive_endpoint,
    run_job,
)
from ladis_core.monitoring.jobs import load_job, load_jobs
from ladis_core.monitoring.protocol import validate_settings
from ladis_core.monitoring.schedule import ScheduleSummary, parse_interval, run_every
from ladis_core.monitoring.scores import SCORES_NAME, WindowScores, load_scores
from ladis_core.monitoring.window import Window, load_reference, load_window, resolve_layers

__all__ = [
    "DEFAULT_LEASE_S",
    "SCORES_NAME",
    "STATE_DIR",
    "TOP_K",
    "BaselineCache",
    "BaselineRates",
    "Bookmark",
    "Claim",
    "ClaimPolicy",
    "ClaimTimeoutError",
    "Claims",
    "JobExistsError",
    "JobIdentity",
    "ResultPublisher",
    "ScheduleSummary",
    "Window",
    "WindowAnalysis",
    "WindowScores",
    "analyse_window",
    "baseline_rates",
    "class_names_for",
    "derive_endpoint",
    "load_job",
    "load_jobs",
    "load_reference",
    "load_scores",
    "load_window",
    "parse_interval",
    "parse_time",
    "read_bookmark",
    "resolve_layers",
    "run_every",
    "run_job",
    "validate_settings",
    "write_bookmark",
]
