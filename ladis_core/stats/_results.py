"""Typed results of the detection-rate protocol."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from ladis_core.stats._engine import CombinedOutcome, LayerOutcome
from ladis_core.stats._protocol import Options

MMD2 = "MMD^2_u"
MAX_STATISTIC = "max-statistic"


@dataclass(frozen=True, eq=False)
class DetectionRateResult:
    """Outcome of R repeated two-sample tests.

    Attributes:
        rate: detection rate in percent (0-100): share of repetitions with p < alpha.
        p_values: ndarray of shape (n_repeats,), one permutation p-value per repetition.
        statistics: ndarray of shape (n_repeats,), the observed statistic per repetition
            (unbiased MMD^2, or the max standardised MMD^2 for a combined result).
        bandwidths: ndarray of shape (n_repeats,), base kernel bandwidth per repetition
            (NaN for a combined result).
        n_samples, n_repeats, alpha, n_permutations, kernel: the settings used.
        class_matched: whether reference rows were drawn with the inference class mix.
        baseline: whether both sides came from disjoint halves of the reference.
        statistic_name: ``"MMD^2_u"`` or ``"max-statistic"``.
        warnings: things the analyst should know (e.g. class-matching fallbacks).
    """

    rate: float
    p_values: np.ndarray
    statistics: np.ndarray
    bandwidths: np.ndarray
    n_samples: int
    n_repeats: int
    alpha: float
    n_permutations: int
    kernel: str
    class_matched: bool = False
    baseline: bool = False
    statistic_name: str = MMD2
    warnings: list[str] = field(default_factory=list)

    @property
    def n_detected(self) -> int:
        """Number of repetitions with p < alpha."""
        return int(np.count_nonzero(self.p_values < self.alpha))

    @property
    def median_p_value(self) -> float:
        return float(np.median(self.p_values))

    def confidence_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Wilson score interval of the rate, in percent (R repetitions as Bernoulli trials).

        Repetitions share rows, so this is a rough guide to the Monte Carlo error only.
        """
        z = NormalDist().inv_cdf(0.5 + level / 2)
        k, r = self.n_detected, self.n_repeats
        phat = k / r
        centre = (phat + z * z / (2 * r)) / (1 + z * z / r)
        half = z * math.sqrt(phat * (1 - phat) / r + z * z / (4 * r * r)) / (1 + z * z / r)
        return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready summary."""
        return {
            "rate": self.rate,
            "p_values": self.p_values.tolist(),
            "statistics": self.statistics.tolist(),
            "median_p_value": self.median_p_value,
            "n_samples": self.n_samples,
            "n_repeats": self.n_repeats,
            "alpha": self.alpha,
            "n_permutations": self.n_permutations,
            "kernel": self.kernel,
            "class_matched": self.class_matched,
            "baseline": self.baseline,
            "statistic_name": self.statistic_name,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, eq=False)
class MultiLayerResult:
    """Per-layer detection rates plus one combined decision.

    Attributes:
        layers: ``{layer_name: DetectionRateResult}`` in the input order.
        combined: the combined test per repetition (same rows and swaps on every layer).
        method: ``"max-statistic"``: per repetition, the maximum over layers of each layer's
            MMD^2 quadratic form divided by the exact standard deviation of its swap
            distribution, tested against the same maximum under the same B swaps.
    """

    layers: dict[str, DetectionRateResult]
    combined: DetectionRateResult
    method: str = MAX_STATISTIC

    @property
    def rates(self) -> dict[str, float]:
        """``{layer_name: rate}``."""
        return {name: res.rate for name, res in self.layers.items()}


def layer_result(
    out: LayerOutcome, opts: Options, *, class_matched: bool, baseline: bool, warnings: list[str]
) -> DetectionRateResult:
    return DetectionRateResult(
        rate=_rate(out.p_values, opts.alpha),
        p_values=out.p_values,
        statistics=out.statistics,
        bandwidths=out.bandwidths,
        class_matched=class_matched,
        baseline=baseline,
        warnings=list(warnings),
        **_settings(opts),
    )


def combined_result(
    out: CombinedOutcome, opts: Options, *, class_matched: bool, baseline: bool, warnings: list[str]
) -> DetectionRateResult:
    return DetectionRateResult(
        rate=_rate(out.p_values, opts.alpha),
        p_values=out.p_values,
        statistics=out.statistics,
        bandwidths=np.full(opts.n_repeats, np.nan),
        class_matched=class_matched,
        baseline=baseline,
        statistic_name=MAX_STATISTIC,
        warnings=list(warnings),
        **_settings(opts),
    )


def _settings(opts: Options) -> dict[str, Any]:
    return {
        "n_samples": opts.n_samples,
        "n_repeats": opts.n_repeats,
        "alpha": opts.alpha,
        "n_permutations": opts.n_permutations,
        "kernel": opts.kernel,
    }


def _rate(p_values: np.ndarray, alpha: float) -> float:
    return float(100.0 * np.mean(p_values < alpha))
