"""Combining per-input p-values across layers.

Each layer gives every inference row a calibrated p-value ``p_l`` (valid for a natural
input: ``P(p_l <= t) <= t``). The Bonferroni combination

    p = min(1, L · min_l p_l),        score = -log10(p)

is a valid p-value for "unlike natural data in at least one layer", whatever the
dependence between layers. Ties are common (p-values are discrete); the ranking breaks
them by the sum of the per-layer scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ladis_core.errors import check


@dataclass(frozen=True, eq=False)
class CombinedScores:
    """``p_values``, ``scores`` (``-log10(p)``) and ``order`` (row indices, most
    suspicious first), each of shape (rows,)."""

    p_values: np.ndarray
    scores: np.ndarray
    order: np.ndarray


def combine_sample_pvalues(
    p_values: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray]
) -> CombinedScores:
    """Bonferroni combination of per-layer p-values (module docstring).

    Args:
        p_values: ``{layer: array of shape (rows,)}`` of calibrated per-input p-values.
        scores: ``{layer: array of shape (rows,)}`` of the per-layer scores (tie-break).

    Examples:
        >>> out = combine_sample_pvalues(
        ...     {"a": np.array([0.01, 0.5]), "b": np.array([0.2, 0.02])},
        ...     {"a": np.array([2.0, 0.3]), "b": np.array([0.7, 1.7])},
        ... )
        >>> out.p_values.tolist(), out.order.tolist()
        ([0.02, 0.04], [0, 1])
    """
    check(bool(p_values), "no layers to combine")
    check(set(p_values) == set(scores), "p-values and scores must name the same layers")
    names = list(p_values)
    stacked = np.stack([np.asarray(p_values[n], dtype=np.float64) for n in names])
    combined = np.minimum(1.0, stacked.min(axis=0) * len(names))
    tie_break = np.stack([np.asarray(scores[n], dtype=np.float64) for n in names]).sum(axis=0)
    return CombinedScores(
        p_values=combined,
        scores=-np.log10(combined),
        order=np.lexsort((-tie_break, combined)),
    )
