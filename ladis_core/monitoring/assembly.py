"""A window and its analysis turned into the :class:`~ladis_core.monitoring.results.JobResult`
that ``results.json`` holds (tested, or not tested with the reason)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ladis_core import store
from ladis_core._version import __version__
from ladis_core.errors import LadisError
from ladis_core.monitoring.analysis import SCORE_METHOD, WindowAnalysis
from ladis_core.monitoring.clock import _iso, _now
from ladis_core.monitoring.results import (
    STATUS_INSUFFICIENT,
    IncidentRule,
    JobResult,
    JobSettings,
    LayerResult,
)
from ladis_core.monitoring.window import Window
from ladis_core.store import layout


@dataclass(frozen=True)
class JobIdentity:
    """What names a job and what it tested, whatever the analysis found."""

    job_id: str
    endpoint: str
    scheduled: datetime
    started: datetime
    reference: str
    inference: str
    rule: IncidentRule
    settings: JobSettings
    class_names: dict[str, str]
    source: str = "monitor"


def class_names_for(reference: str) -> dict[str, str]:
    """Class names of the model whose reference trial is ``reference``: those its capture
    recorded (``ladis.json``), else, when the trial sits in a LADIS world
    (``<world>/trials/<endpoint>/reference`` beside ``<world>/models/<endpoint>/model.json``),
    the model spec's; ``{}`` otherwise (plain indices). Best effort: names only make the
    results friendlier, so a missing or unreadable record is not an error."""
    from ladis_core import trials

    try:
        meta = trials.trial_meta(reference)
    except LadisError:
        meta = None
    if meta is not None and meta.class_names:
        return {str(index): name for index, name in enumerate(meta.class_names)}
    parts = reference.rstrip("/").rsplit("/", 3)
    if len(parts) != 4 or parts[1] != "trials" or parts[3] != "reference":
        return {}
    spec_uri = layout.join(layout.model_uri(parts[0], parts[2]), "model.json")
    try:
        names = store.read_json(spec_uri).get("class_names") or []
    except (LadisError, AttributeError):
        return {}
    return {str(index): str(name) for index, name in enumerate(names)}


def tested_result(identity: JobIdentity, window: Window, analysis: WindowAnalysis) -> JobResult:
    """The result of a window that was tested."""
    return JobResult(
        **_common(identity, window),
        finished_at=_iso(_now()),
        detection_rate=analysis.detection_rate,
        baseline_detection_rate=analysis.baseline_detection_rate,
        layers=analysis.layers,
        incident=identity.rule.decide(
            None if analysis.window_test is None else analysis.window_test.p_value,
            analysis.detection_rate,
            analysis.baseline_detection_rate,
        ),
        top_samples=analysis.top_samples,
        combined_method=analysis.combined_method,
        score_method=SCORE_METHOD,
        window_test=analysis.window_test,
        baseline_range=None if analysis.baseline is None else analysis.baseline.range,
        baseline_splits=1 if analysis.baseline is None else analysis.baseline.splits,
        warnings=list(analysis.warnings),
    )


def untested_result(
    identity: JobIdentity, window: Window, *, reason: str, dimensions: dict[str, int]
) -> JobResult:
    """The result of a window that could not be tested: rates ``None``, never a false 0 %."""
    return JobResult(
        **_common(identity, window),
        finished_at=_iso(_now()),
        detection_rate=None,
        baseline_detection_rate=None,
        layers={n: LayerResult(detection_rate=None, dimension=d) for n, d in dimensions.items()},
        incident=False,
        status=STATUS_INSUFFICIENT,
        reason=reason,
    )


def untested_reason(window: Window, *, n_samples: int, first_step: int, node: int) -> str:
    """Why a window with fewer than ``n_samples`` rows is not tested, and what happens to
    its requests (``node``: the bookmark's next step)."""
    rows = len(window)
    if rows == 0:
        since = f"since step {first_step}" if first_step > 0 else "in the trial"
        return f"no new inference requests {since}"
    requests = int(np.unique(window.steps).size)
    first, last = int(window.steps.min()), int(window.steps.max())
    return (
        f"{rows} rows ({requests} requests, steps {first}–{last}) are fewer than "
        f"n_samples={n_samples}; not tested, the bookmark stays at step "
        f"{node - 1 if node else 'start'} so these requests roll into the next window"
    )


def _common(identity: JobIdentity, window: Window) -> dict:
    rows = len(window)
    classes, counts = np.unique(window.classes, return_counts=True)
    return {
        "job_id": identity.job_id,
        "endpoint": identity.endpoint,
        "scheduled_at": _iso(identity.scheduled),
        "started_at": _iso(identity.started),
        "reference": identity.reference,
        "inference": identity.inference,
        "first_step": int(window.steps.min()) if rows else None,
        "last_step": int(window.steps.max()) if rows else None,
        "requests": int(np.unique(window.steps).size),
        "incident_rule": identity.rule,
        "settings": identity.settings,
        "class_counts": {str(int(c)): int(k) for c, k in zip(classes, counts, strict=True)},
        "class_names": identity.class_names,
        "source": identity.source,
        "ladis_version": __version__,
    }
