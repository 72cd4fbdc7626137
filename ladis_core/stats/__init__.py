"""The LADIS statistics engine: MMD permutation tests, detection rates, per-input scores.

Public API (re-exported lazily by :mod:`ladis_core`):

* :func:`mmd_test` -> :class:`MMDTestResult`: one kernel two-sample test.
* :func:`detection_rate`, :func:`baseline_detection_rate` -> :class:`DetectionRateResult`.
* :func:`multi_layer_detection_rate` -> :class:`MultiLayerResult` (max-statistic combination).
* :func:`sample_scores` (scores) and :func:`sample_scores_with_pvalues`
  -> :class:`SampleScoreResult` (scores, calibrated p-values, ranking).
* :func:`combine_sample_pvalues` -> :class:`CombinedScores`: per-input p-values of several
  layers combined (Bonferroni).

See ``docs/statistics.md`` for the formulas.
"""

from ladis_core.stats._combine import CombinedScores, combine_sample_pvalues
from ladis_core.stats._detection import baseline_detection_rate, detection_rate
from ladis_core.stats._mmd import MMDTestResult, mmd_test
from ladis_core.stats._multilayer import multi_layer_detection_rate
from ladis_core.stats._results import DetectionRateResult, MultiLayerResult
from ladis_core.stats._scores import SampleScoreResult, sample_scores, sample_scores_with_pvalues

__all__ = [
    "CombinedScores",
    "DetectionRateResult",
    "MMDTestResult",
    "MultiLayerResult",
    "SampleScoreResult",
    "baseline_detection_rate",
    "combine_sample_pvalues",
    "detection_rate",
    "mmd_test",
    "multi_layer_detection_rate",
    "sample_scores",
    "sample_scores_with_pvalues",
]
