"""LADIS: Detecting Adversarial Input Distributions via Layerwise Statistics.

The public statistics API is re-exported here lazily (importing ``ladis_core`` stays
cheap; torch is loaded on first use)::

    from ladis_core import mmd_test, detection_rate, baseline_detection_rate
    from ladis_core import multi_layer_detection_rate, sample_scores
    from ladis_core import window_test, estimate_share
"""

from __future__ import annotations

import importlib
from typing import Any

from ladis_core._version import __version__

_LAZY = {
    "mmd_test": "ladis_core.stats",
    "detection_rate": "ladis_core.stats",
    "baseline_detection_rate": "ladis_core.stats",
    "multi_layer_detection_rate": "ladis_core.stats",
    "sample_scores": "ladis_core.stats",
    "sample_scores_with_pvalues": "ladis_core.stats",
    "window_test": "ladis_core.stats",
    "WindowTestResult": "ladis_core.stats",
    "estimate_share": "ladis_core.stats",
    "ShareEstimate": "ladis_core.stats",
    "SampleScoreResult": "ladis_core.stats",
    "MMDTestResult": "ladis_core.stats",
    "DetectionRateResult": "ladis_core.stats",
    "MultiLayerResult": "ladis_core.stats",
    "JobResult": "ladis_core.monitoring.results",
    "LadisError": "ladis_core.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ladis_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
