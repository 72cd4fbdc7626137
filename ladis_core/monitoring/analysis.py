"""The analysis of one window: the window test (the decision: one exact permutation test
on every distinct row, with the estimated share of crafted inputs), the detection rates
per layer and combined against the baseline, per-input scores and the most suspicious
inputs.

:func:`analyse_window` is the statistics of a job with nothing else: no storage (except
the baseline cache it is given), no claims, no job ids. The monitoring job and the
on-demand test both call it, then turn its :class:`WindowAnalysis` into a
:class:`~ladis_core.monitoring.results.JobResult` (:mod:`~ladis_core.monitoring.assembly`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ladis_core.errors import check
from ladis_core.monitoring.baseline import BaselineCache, BaselineRates, baseline_rates
from ladis_core.monitoring.evidence import (
    REFERENCE_ROWS_PER_CLASS,
    WindowEvidence,
    reference_floor,
)
from ladis_core.monitoring.protocol import rates, stats_options, validate_settings
from ladis_core.monitoring.results import JobSettings, LayerResult, TopSample
from ladis_core.monitoring.scores import WindowScores
from ladis_core.monitoring.window import Window
from ladis_core.progress import ProgressCallback, report
from ladis_core.trials import TrialData

#: how many of the most suspicious inputs a job records
TOP_K = 100
SCORE_METHOD = "witness-pvalue"


@dataclass(frozen=True)
class WindowAnalysis:
    """What the statistics say about one window (rates in percent).

    ``layers``: per layer its rate, baseline rate, median p-value, the R p-values and
    its dimension; ``top_samples``: the :data:`TOP_K` most suspicious rows, best first;
    ``scores``: every row's score and p-value; ``window_test``: the window test;
    ``baseline``: the baseline rates over several reference splits; ``warnings``: what
    the engine noticed (class-matching fallbacks, rows left out, too few reference rows).
    """

    detection_rate: float
    baseline_detection_rate: float
    layers: dict[str, LayerResult]
    top_samples: list[TopSample]
    scores: WindowScores
    combined_method: str
    window_test: WindowEvidence | None = None
    baseline: BaselineRates | None = None
    warnings: tuple[str, ...] = ()


def analyse_window(
    reference: TrialData,
    window: Window,
    *,
    layers: Sequence[str],
    settings: JobSettings,
    baseline_cache: BaselineCache | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> WindowAnalysis:
    """Test ``window`` against ``reference`` on ``layers`` (tensor names present in both).

    The window needs at least ``settings.n_samples`` rows and the reference twice that
    (two halves for the baseline); otherwise :class:`~ladis_core.errors.InputError`.
    Progress stages: ``baseline``, ``window test``, ``detection``, ``scores``.
    ``device``: where the statistics run (``"cuda"``; default CPU).
    """
    from ladis_core import stats

    validate_settings(settings)
    names = list(layers)
    check(bool(names), "no layers to test")
    check(
        len(window) >= settings.n_samples,
        f"the window has {len(window)} rows; n_samples={settings.n_samples} needs that many",
    )
    check(
        len(reference) >= 2 * settings.n_samples,
        f"the reference has {len(reference)} rows; n_samples={settings.n_samples} needs "
        f"{2 * settings.n_samples} (two halves for the baseline)",
    )
    report(progress, "baseline", 0, 1)
    baseline = baseline_rates(reference, names, settings, cache=baseline_cache, device=device)
    report(progress, "baseline", 1, 1)
    report(progress, "window test", 0, 1, f"{len(names)} layer(s), {len(window)} rows")
    evidence, window_warnings = _window_test(reference, window, names, settings, device)
    report(progress, "window test", 1, 1, f"p = {evidence.p_value:.3g}")
    report(progress, "detection", 0, 1, f"{len(names)} layer(s), {len(window)} rows")
    outcome = stats.multi_layer_detection_rate(
        {n: reference.layers[n] for n in names},
        {n: window.layers[n] for n in names},
        reference_classes=reference.predicted_class if settings.class_matched else None,
        inference_classes=window.classes if settings.class_matched else None,
        **stats_options(settings, device),
    )
    report(progress, "detection", 1, 1)
    combined, per_layer_rates = rates(outcome, names)
    layer_results = {
        name: LayerResult(
            detection_rate=per_layer_rates[name],
            baseline_detection_rate=baseline.layers.get(name),
            median_p_value=float(outcome.layers[name].median_p_value),
            p_values=[float(p) for p in np.asarray(outcome.layers[name].p_values).ravel()],
            dimension=int(reference.layers[name].shape[1]),
        )
        for name in names
    }
    report(progress, "scores", 0, 1)
    scores, order = _sample_scores(reference, window, names, settings, device)
    report(progress, "scores", 1, 1)
    top = [
        TopSample(
            step=int(window.steps[i]),
            score=float(scores.score[i]),
            predicted_class=int(window.classes[i]),
            p_value=float(scores.p_value[i]),
        )
        for i in order[:TOP_K]
    ]
    return WindowAnalysis(
        detection_rate=combined,
        baseline_detection_rate=baseline.combined,
        layers=layer_results,
        top_samples=top,
        scores=scores,
        combined_method=settings.combination if len(names) > 1 else "single-layer",
        window_test=evidence,
        baseline=baseline,
        warnings=tuple(dict.fromkeys([*window_warnings, *outcome.combined.warnings])),
    )


def _window_test(
    reference: TrialData,
    window: Window,
    names: Sequence[str],
    settings: JobSettings,
    device: str | None,
) -> tuple[WindowEvidence, list[str]]:
    """The window test on every distinct row (classes when class-matched), and its
    warnings, including one when the decision rests on few reference rows."""
    from ladis_core import stats

    matched = bool(settings.class_matched)
    result = stats.window_test(
        {n: reference.layers[n] for n in names},
        {n: window.layers[n] for n in names},
        reference_classes=reference.predicted_class if matched else None,
        inference_classes=window.classes if matched else None,
        n_permutations=settings.n_permutations,
        seed=settings.seed,
        device=device,
    )
    evidence = WindowEvidence.from_test(result)
    warnings = list(result.warnings)
    n_classes = len(np.unique(window.classes)) if matched else 1
    floor = reference_floor(n_classes)
    if evidence.reference_rows < floor:
        warnings.append(
            f"the window test rests on {evidence.reference_rows} reference rows, fewer than "
            f"{floor} ({REFERENCE_ROWS_PER_CLASS} per predicted class of the window): its "
            "per-class comparisons are coarse; capture more validation data"
        )
    return evidence, warnings


def _sample_scores(
    reference: TrialData,
    window: Window,
    names: Sequence[str],
    settings: JobSettings,
    device: str | None,
) -> tuple[WindowScores, np.ndarray]:
    """Every row's score and calibrated p-value, combined over layers, and the ranking
    (row indices, most suspicious first; shape (rows,)).

    One layer: the witness p-value calibrated on held-out reference rows, score
    ``-log10(p)``. Several layers: :func:`ladis_core.stats.combine_sample_pvalues`.
    """
    from ladis_core import stats

    outcomes = {
        name: stats.sample_scores_with_pvalues(
            reference.layers[name],
            window.layers[name],
            seed=settings.seed,
            kernel=settings.kernel,
            standardize=bool(settings.standardize),
            device=device,
        )
        for name in names
    }
    per_layer = {
        name: {
            "score": np.asarray(o.scores, dtype=np.float64),
            "p_value": np.asarray(o.p_values, dtype=np.float64),
        }
        for name, o in outcomes.items()
    }
    if len(names) == 1:
        only = per_layer[names[0]]
        score, p_value = only["score"], only["p_value"]
        order = np.asarray(outcomes[names[0]].ranking())
    else:
        combined = stats.combine_sample_pvalues(
            {n: v["p_value"] for n, v in per_layer.items()},
            {n: v["score"] for n, v in per_layer.items()},
        )
        score, p_value, order = combined.scores, combined.p_values, combined.order
    scores = WindowScores(
        steps=np.asarray(window.steps, dtype=np.int64),
        predicted_class=np.asarray(window.classes, dtype=np.int64),
        score=score,
        p_value=p_value,
        score_method=SCORE_METHOD,
        layers=per_layer,
    )
    return scores, order
