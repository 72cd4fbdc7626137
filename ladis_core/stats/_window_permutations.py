"""The B permutations of the window test as matrix products, and their p-values.

Quadratic statistics (MMD): with the pooled feature maps ``Phi`` (rows, D) of every layer
and kernel side by side, the observed weighted mean difference is ``v_0 = w^T Phi`` and a
permutation that swaps the pairs marked by ``bits_b`` gives ``v_b = v_0 + bits_b^T Delta``,
``Delta_i = c_i (phi(ref_i) - phi(win_i))``; each statistic is the squared norm of one
block of ``v_b``. Linear statistics (sums of a per-input score over the window): swapping
pair i adds ``g(ref_i) - g(win_i)``, so all of them are ``s_0 + bits @ (G_ref - G_win)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ladis_core.stats._engine import _REL_TOL, permutation_p_values
from ladis_core.stats._window_design import Design


@dataclass(frozen=True)
class PermutationOutcome:
    """p-values of one window test: ``single`` (S,) one per statistic; ``groups`` one per
    group of statistics (each group's own max); ``families`` one per family; ``p_value``
    of the decision (the smallest family p-value, calibrated by the same permutations);
    ``statistic`` its observed value, ``-log10`` of that smallest p-value."""

    single: list[float]
    groups: list[float]
    families: list[float]
    p_value: float
    statistic: float
    #: (S, B + 1) float64: every statistic under the observed labelling and each permutation
    statistics: np.ndarray


def permutation_outcome(
    features: torch.Tensor,
    sizes: list[int],
    scores: torch.Tensor,
    design: Design,
    bits: torch.Tensor,
    *,
    groups: list[list[int]],
    families: list[list[int]],
) -> PermutationOutcome:
    """Every statistic under the observed labelling (row 0 of ``bits``, all zero) and the
    B permutations, standardised and combined by their maximum.

    ``features`` (pooled rows, D) float32: one block of ``sizes[s]`` columns per quadratic
    statistic; ``scores`` (pooled rows, G) float64: one column per linear statistic.
    Statistics are numbered quadratic first, then linear; ``groups`` lists the statistics
    of each group (a layer, or all layers) and ``families`` those of each family of the
    decision: within a family the standardised statistics are combined by their maximum,
    and the families by the smallest of their permutation p-values (min-P, Westfall and
    Young 1993), so each family keeps its share of the level whatever its size."""
    device, dtype = features.device, features.dtype
    weights = torch.from_numpy(design.weights).to(device=device, dtype=dtype)
    ref = torch.from_numpy(design.pair_reference).to(device)
    win = torch.from_numpy(design.pair_window).to(device)
    coef = torch.from_numpy(design.pair_coefficient).to(device=device, dtype=dtype)
    delta = (features[ref] - features[win]).mul_(coef[:, None])  # (P, D)
    moved = torch.addmm(weights @ features, bits, delta)  # (B + 1, D)
    quadratic = [(b * b).sum(dim=1, dtype=torch.float64) for b in moved.split(sizes, dim=1)]
    n_ref = len(design.reference_rows)
    linear = scores[n_ref:].sum(dim=0) + bits.double() @ (scores[ref] - scores[win])  # (B+1, G)
    stats = torch.cat([torch.stack(quadratic), linear.T]) if quadratic else linear.T
    single = permutation_p_values(stats, _REL_TOL * stats[:, 0].abs().clamp_min(1e-300))
    z = standardised(stats)
    per_group = torch.stack([z[list(members)].amax(dim=0) for members in groups])
    per_family = torch.stack([z[list(members)].amax(dim=0) for members in families])
    smallest = rank_p_values(per_family).amin(dim=0, keepdim=True)  # (1, B + 1)
    decision = -smallest  # larger is more extreme
    return PermutationOutcome(
        single=[float(p) for p in single],
        groups=[float(p) for p in permutation_p_values(per_group, _tolerance(per_group))],
        families=[float(p) for p in rank_p_values(per_family)[:, 0]],
        p_value=float(permutation_p_values(decision, torch.zeros(1, dtype=decision.dtype))[0]),
        statistic=float(-torch.log10(smallest[0, 0])),
        statistics=stats.cpu().numpy(),
    )


def rank_p_values(stats: torch.Tensor) -> torch.Tensor:
    """(S, B + 1): for every row and every one of its B + 1 values, the share of the row's
    values at least as large (the permutation p-value each labelling would get)."""
    ordered = torch.sort(stats, dim=1).values
    below = torch.searchsorted(ordered, stats.contiguous(), right=False)
    return (stats.shape[1] - below).to(torch.float64) / stats.shape[1]


def standardised(stats: torch.Tensor) -> torch.Tensor:
    """Each row of (S, B + 1) minus its mean over the B + 1 values, divided by their
    standard deviation (0 where constant): symmetric in the permutations, so exact."""
    centred = stats - stats.mean(dim=1, keepdim=True)
    sd = centred.pow(2).mean(dim=1, keepdim=True).sqrt()
    return centred / torch.where(sd > 0, sd, torch.ones_like(sd))


def _tolerance(stats: torch.Tensor) -> torch.Tensor:
    return _REL_TOL * stats[:, 0].abs().clamp_min(1.0)
