"""The share of a window's inputs that look crafted, from calibrated per-input p-values.

A natural input's calibrated p-value is (close to) uniform, so among ``n`` inputs of which
a share ``pi_0`` are natural, ``P(p > lambda) >= pi_0 (1 - lambda)``. Storey's estimator
(J. R. Statist. Soc. B 64, 2002)

    share = 1 - #{p_j > lambda} / (n (1 - lambda))

is then a conservative estimate: it counts only the crafted inputs whose p-values are not
spread like natural ones -- the share that *looks* crafted. The interval is a Wilson score
interval for ``q = P(p > lambda)`` mapped through ``share = 1 - q / (1 - lambda)``. The
per-input p-values share one calibration set, which adds the calibration's own sampling
error; the interval counts it by using the effective size ``1 / (1/n + 1/n_calibration)``.

Its lower end is a valid lower confidence bound for the crafted share; its upper end bounds
the share that looks crafted (a crafted input indistinguishable from natural ones cannot be
counted by any method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from ladis_core.errors import check

#: Storey's lambda: p-values above it count as natural-looking
DEFAULT_LAMBDA = 0.5
DEFAULT_LEVEL = 0.95
METHOD = "storey"


@dataclass(frozen=True)
class ShareEstimate:
    """Estimated share (0-1) of inputs that look crafted, with a ``level`` interval.

    ``n_inputs``: how many p-values it rests on (0: nothing to estimate, all fields 0).
    """

    estimate: float
    low: float
    high: float
    level: float = DEFAULT_LEVEL
    n_inputs: int = 0
    lam: float = DEFAULT_LAMBDA
    method: str = METHOD

    def describe(self, what: str = "this window's requests") -> str:
        """``"between 14 % and 31 % of this window's requests look crafted (estimate 22 %)"``."""
        if self.n_inputs == 0:
            return f"no share estimate: {what} have no calibrated p-values"
        return (
            f"between {100 * self.low:.0f} % and {100 * self.high:.0f} % of {what} look crafted "
            f"(estimate {100 * self.estimate:.0f} %, {100 * self.level:.0f} % interval)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "n_inputs": self.n_inputs,
            "lambda": self.lam,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ShareEstimate:
        """From :meth:`to_dict`'s output (``TypeError``/``ValueError``/``KeyError`` if malformed)."""
        values = [float(data[k]) for k in ("estimate", "low", "high")]
        check(
            all(0.0 <= v <= 1.0 for v in values) and values[1] <= values[2],
            f"a share estimate needs 0 <= low <= high <= 1; got {values}",
        )
        return cls(
            *values,
            level=float(data.get("level", DEFAULT_LEVEL)),
            n_inputs=int(data.get("n_inputs", 0)),
            lam=float(data.get("lambda", DEFAULT_LAMBDA)),
            method=str(data.get("method", METHOD)),
        )


def estimate_share(
    p_values: Any,
    *,
    lam: float = DEFAULT_LAMBDA,
    level: float = DEFAULT_LEVEL,
    n_calibration: int | None = None,
) -> ShareEstimate:
    """Storey's estimate of the share of inputs that look crafted, with an interval.

    Args:
        p_values: array of shape (n,), calibrated per-input p-values (NaN entries ignored).
        lam: threshold in (0, 1); p-values above it count as natural-looking.
        level: confidence level of the interval, in (0, 1).
        n_calibration: size of the calibration set the p-values share (None: independent).

    Examples:
        >>> est = estimate_share(np.linspace(0.0025, 0.9975, 200))
        >>> round(est.estimate, 3), est.low, round(est.high, 2)
        (0.0, 0.0, 0.27)
    """
    check(0.0 < float(lam) < 1.0, f"lam must be in (0, 1); got {lam!r}")
    check(0.0 < float(level) < 1.0, f"level must be in (0, 1); got {level!r}")
    values = np.asarray(p_values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    n = int(values.size)
    if n == 0:
        return ShareEstimate(0.0, 0.0, 0.0, level=level, n_inputs=0, lam=lam)
    q_hat = float(np.count_nonzero(values > lam)) / n
    n_eff = n if not n_calibration else 1.0 / (1.0 / n + 1.0 / int(n_calibration))
    q_low, q_high = _wilson(q_hat, n_eff, level)

    def share(q: float) -> float:
        return min(1.0, max(0.0, 1.0 - q / (1.0 - lam)))

    return ShareEstimate(
        estimate=share(q_hat),
        low=share(q_high),
        high=share(q_low),
        level=level,
        n_inputs=n,
        lam=lam,
    )


def _wilson(phat: float, n: float, level: float) -> tuple[float, float]:
    z = NormalDist().inv_cdf(0.5 + level / 2)
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
