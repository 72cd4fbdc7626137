"""The LADIS statistics engine: MMD permutation tests, detection rates, per-input scores.

Public API (re-exported lazily by :mod:`ladis_core`):

* :func:`mmd_test` -> :class:`MMDTestResult`: one kernel two-sample test.
* :func:`detection_rate`, :func:`baseline_detection_rate` -> :class:`DetectionRateResult`.
* :func:`multi_layer_detection_rate` -> :class:`MultiLayerResult` (max-statistic combination).
* :func:`sample_scores` (scores) and :func:`sample_scores_with_pvalues`
  -> :class:`SampleScoreResult` (scores, calibrated p-values, ranking).
* :func:`combine_sample_pvalues` -> :class:`CombinedScores`: per-input p-values of several
  layers combined (Bonferroni).
* :func:`window_test` -> :class:`WindowTestResult`: one exact permutation test on every row
  of a window (class-conditional, layers and kernels in one max-statistic), with the
  estimated share of crafted inputs (:func:`estimate_share` -> :class:`ShareEstimate`).

See ``docs/statistics.md`` for the formulas.
"""

from ladis_core.stats._combine import CombinedScores, combine_sample_pvalues
from ladis_core.stats._detection import baseline_detection_rate, detection_rate
from ladis_core.stats._mmd import MMDTestResult, mmd_test
from ladis_core.stats._multilayer import multi_layer_detection_rate
from ladis_core.stats._results import DetectionRateResult, MultiLayerResult
from ladis_core.stats._scores import SampleScoreResult, sample_scores, sample_scores_with_pvalues
from ladis_core.stats._share import ShareEstimate, estimate_share
from ladis_core.stats._window import window_test
from ladis_core.stats._window_results import ClassShare, WindowTestResult

__all__ = [
    "ClassShare",
    "CombinedScores",
    "DetectionRateResult",
    "MMDTestResult",
    "MultiLayerResult",
    "SampleScoreResult",
    "ShareEstimate",
    "WindowTestResult",
    "baseline_detection_rate",
    "combine_sample_pvalues",
    "detection_rate",
    "estimate_share",
    "mmd_test",
    "multi_layer_detection_rate",
    "sample_scores",
    "sample_scores_with_pvalues",
    "window_test",
]
