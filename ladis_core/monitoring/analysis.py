"""The analysis of one window: detection rates per layer and combined, baseline, per-input
scores and the top 100, as a :class:`~ladis_core.monitoring.results.JobResult`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ladis_core import store
from ladis_core._version import __version__
from ladis_core.errors import LadisError
from ladis_core.monitoring.baseline import _baseline
from ladis_core.monitoring.clock import _iso, _now
from ladis_core.monitoring.protocol import _rates, _stats_options
from ladis_core.monitoring.results import (
    STATUS_INSUFFICIENT,
    IncidentRule,
    JobResult,
    JobSettings,
    LayerResult,
    TopSample,
)
from ladis_core.monitoring.window import Window
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger("ladis.monitor")


TOP_K = 100


def class_names_for(reference: str) -> dict[str, str]:
    """Class names of the model whose reference trial is ``reference``, when the trial sits
    in a LADIS world (``<world>/trials/<endpoint>/reference`` beside
    ``<world>/models/<endpoint>/model.json``); ``{}`` otherwise. Best effort: names only
    make the results friendlier, so a missing or unreadable spec is not an error."""
    parts = reference.rstrip("/").rsplit("/", 3)
    if len(parts) != 4 or parts[1] != "trials" or parts[3] != "reference":
        return {}
    spec_uri = layout.join(layout.model_uri(parts[0], parts[2]), "model.json")
    try:
        names = store.read_json(spec_uri).get("class_names") or []
    except (LadisError, AttributeError):
        return {}
    return {str(index): str(name) for index, name in enumerate(names)}


def analyse_window(
    *,
    job_id: str,
    endpoint: str,
    scheduled: datetime,
    started: datetime,
    reference: str,
    inference: str,
    output: str,
    ref: Any,
    window: Window,
    names: Sequence[str],
    settings: JobSettings,
    rule: IncidentRule,
    first_step: int,
    node: int,
    tested: bool,
    baseline_cache: bool,
    progress: ProgressCallback | None,
    device: str | None = None,
) -> tuple[JobResult, dict[str, Any] | None]:
    """The JobResult of ``window`` and, when it was tested, its per-row scores document
    (what ``scores.json`` holds). Writes nothing except the baseline cache under
    ``output`` when ``baseline_cache`` (the on-demand test reuses this).

    ``ref``: the reference :class:`~ladis_core.trials.TrialData`; ``names``: resolved
    tensor names; ``first_step``: the first step the window could hold; ``node``: the
    bookmark's next step (only used in the "too few requests" reason); ``tested``:
    whether the window has at least ``n_samples`` rows; ``device``: where the statistics
    run (``"cuda"``; default CPU).
    """
    rows = len(window)
    requests = int(np.unique(window.steps).size)
    dims = {n: int(ref.layers[n].shape[1]) for n in names}
    classes, counts = np.unique(window.classes, return_counts=True)
    common = {
        "job_id": job_id,
        "endpoint": endpoint,
        "scheduled_at": _iso(scheduled),
        "started_at": _iso(started),
        "reference": reference,
        "inference": inference,
        "first_step": int(window.steps.min()) if rows else None,
        "last_step": int(window.steps.max()) if rows else None,
        "requests": requests,
        "incident_rule": rule,
        "settings": settings,
        "class_counts": {str(int(c)): int(k) for c, k in zip(classes, counts, strict=True)},
        "class_names": class_names_for(reference),
        "ladis_version": __version__,
    }
    if not tested:
        if rows == 0:
            since = f"since step {first_step}" if first_step > 0 else "in the trial"
            reason = f"no new inference requests {since}"
        else:
            reason = (
                f"{rows} rows ({requests} requests, steps {common['first_step']}–{common['last_step']}) "
                f"are fewer than n_samples={settings.n_samples}; not tested, the bookmark stays at step "
                f"{node - 1 if node else 'start'} so these requests roll into the next window"
            )
        result = JobResult(
            **common,
            finished_at=_iso(_now()),
            detection_rate=None,
            baseline_detection_rate=None,
            layers={n: LayerResult(detection_rate=None, dimension=dims[n]) for n in names},
            incident=False,
            status=STATUS_INSUFFICIENT,
            reason=reason,
        )
        log.info("job %s: %s", job_id, reason)
        return result, None

    from ladis_core import stats

    report(progress, "baseline", 0, 1)
    baseline, layer_baselines = _baseline(
        output, reference, ref, names, settings, use_cache=baseline_cache, device=device
    )
    report(progress, "baseline", 1, 1)
    report(progress, "detection", 0, 1, f"{len(names)} layer(s), {rows} rows")
    outcome = stats.multi_layer_detection_rate(
        {n: ref.layers[n] for n in names},
        {n: window.layers[n] for n in names},
        reference_classes=ref.predicted_class if settings.class_matched else None,
        inference_classes=window.classes if settings.class_matched else None,
        **_stats_options(settings, device),
    )
    report(progress, "detection", 1, 1)
    combined, per_layer_rates = _rates(outcome, names)
    for warning in outcome.combined.warnings:
        log.warning("job %s: %s", job_id, warning)
    layer_results = {}
    for name in names:
        layer = outcome.layers[name]
        layer_results[name] = LayerResult(
            detection_rate=per_layer_rates[name],
            baseline_detection_rate=layer_baselines.get(name),
            median_p_value=float(layer.median_p_value),
            p_values=[float(p) for p in np.asarray(layer.p_values).ravel()],
            dimension=dims[name],
        )

    report(progress, "scores", 0, 1)
    scores, p_values, order, per_layer_scores = _sample_scores(ref, window, names, settings, device)
    report(progress, "scores", 1, 1)
    top = [
        TopSample(
            step=int(window.steps[i]),
            score=float(scores[i]),
            predicted_class=int(window.classes[i]),
            p_value=float(p_values[i]),
        )
        for i in order[:TOP_K]
    ]
    result = JobResult(
        **common,
        finished_at=_iso(_now()),
        detection_rate=combined,
        baseline_detection_rate=baseline,
        layers=layer_results,
        incident=rule.is_incident(combined, baseline),
        top_samples=top,
        combined_method=settings.combination if len(names) > 1 else "single-layer",
    )
    scores_doc = {
        "job_id": job_id,
        "score_method": result.score_method,
        "steps": [int(s) for s in window.steps],
        "predicted_class": [int(c) for c in window.classes],
        "score": [float(v) for v in scores],
        "p_value": [float(v) for v in p_values],
        "layers": {
            n: {"score": [float(v) for v in sc], "p_value": [float(v) for v in pv]}
            for n, (sc, pv) in per_layer_scores.items()
        },
    }
    return result, scores_doc


def _sample_scores(
    ref: Any, window: Window, names: Sequence[str], settings: JobSettings, device: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per-row score, calibrated p-value and ranking (most suspicious first), combined
    over layers, plus (score, p-value) per layer. All arrays have shape (rows,).

    One layer: the stats engine's witness p-value calibrated on held-out reference rows,
    score ``-log10(p)``. Several layers: Bonferroni, ``p = min(1, L × min_l p_l)``, a
    valid p-value for "unlike natural data in at least one layer", score ``-log10(p)``;
    ties (common: p-values are discrete) are broken by the sum of per-layer scores.
    """
    from ladis_core import stats

    per_layer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    outcomes = {}
    for name in names:
        outcome = stats.sample_scores_with_pvalues(
            ref.layers[name],
            window.layers[name],
            seed=settings.seed,
            standardize=bool(settings.standardize),
            device=device,
        )
        outcomes[name] = outcome
        per_layer[name] = (
            np.asarray(outcome.scores, dtype=np.float64),
            np.asarray(outcome.p_values, dtype=np.float64),
        )
    if len(names) == 1:
        only = outcomes[names[0]]
        scores, p_values = per_layer[names[0]]
        return scores, p_values, np.asarray(only.ranking()), per_layer
    stacked_p = np.stack([p for _, p in per_layer.values()])
    p_values = np.minimum(1.0, stacked_p.min(axis=0) * len(names))
    scores = -np.log10(p_values)
    tie_break = np.stack([s for s, _ in per_layer.values()]).sum(axis=0)
    return scores, p_values, np.lexsort((-tie_break, p_values)), per_layer
