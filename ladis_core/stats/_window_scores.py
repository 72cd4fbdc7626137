"""Per-input scores of the window test: how far each input lies from its natural neighbours.

Adversarial perturbations move an input's representation off the natural data, but only
partly: on the demo world a PGD input's distance to its nearest natural rows separates it
from natural inputs with an AUROC of about 0.85 (layer3.1), while a kernel mean embedding
over the whole window dilutes that signal. So besides the MMD statistics the test uses,
per layer,

    s_l(z) = mean of the k smallest ||z - u||^2 over the landmarks u (fit rows) of z's class,

on features scaled by the fit rows: how unlike the natural inputs of its predicted class an
input is (an attack that changes the predicted class leaves the input among the natural
rows of its true class, far from those of the class it is now given). Each layer's scores are turned into ranks among the
rows that can be in the window (the calibration rows and the window rows, a set no
permutation changes), and the per-input score of all layers is the rank of the sum of
those ranks. A statistic is the sum of one score over the window's rows: linear in the
labelling, so its B permutations are one small product with the swap bits.

Calibrated p-values: a calibration row and a natural window row are exchangeable given
their class, so (Mondrian conformal prediction, Vovk et al. 2005)

    p_j = (1 + #{calibration rows i of class(j) : s(i) >= s(j)}) / (#{...} + 1)

is a valid p-value for a natural input whatever the class mix.
"""

from __future__ import annotations

import numpy as np
import torch

from ladis_core.stats._window_design import Design

#: neighbours a score averages over
DEFAULT_NEIGHBOURS = 5


def neighbour_scores(
    sq: torch.Tensor, k: int, row_classes: torch.Tensor, landmark_classes: torch.Tensor
) -> torch.Tensor:
    """Mean of the ``k`` smallest squared distances to the landmarks of the row's own
    class, (rows,) float64, from ``sq`` of shape (rows, L) and the classes of the rows
    (rows,) and landmarks (L,). Fewer than ``k`` landmarks of a class: the mean of those
    there are (every class of the design has at least one fit row among the landmarks)."""
    other = row_classes[:, None] != landmark_classes[None, :]
    masked = sq.masked_fill(other, float("inf"))
    nearest = torch.topk(masked, min(k, sq.shape[1]), dim=1, largest=False).values.double()
    finite = torch.isfinite(nearest)
    return torch.where(finite, nearest, 0.0).sum(dim=1) / finite.sum(dim=1).clamp_min(1)


def choose_landmarks(design: Design, count: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Pooled positions of ``count`` fit rows (all of them when fewer), drawn at random
    class by class in proportion to the fit rows, with at least ``k`` of every class (or
    all of its fit rows): every class has natural neighbours to be measured against."""
    fit = design.fit_rows
    if count >= len(fit):
        return fit
    codes = design.class_codes[fit]
    chosen = []
    for c in np.unique(codes):
        members = fit[codes == c]
        take = min(len(members), max(k, int(round(count * len(members) / len(fit)))))
        chosen.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(chosen))


def movable_ranks(scores: torch.Tensor, movable: np.ndarray) -> np.ndarray:
    """Ranks in (0, 1] of ``scores[movable]`` among themselves (ties averaged), as a
    full-length array (0 elsewhere): symmetric in the movable rows."""
    values = scores.cpu().numpy()[movable]
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    out = np.zeros(len(scores))
    out[movable] = (sums / counts)[inverse] / len(values)
    return out


def movable_rows(design: Design) -> np.ndarray:
    """Pooled positions of the calibration (paired reference) rows and all window rows."""
    n_ref = len(design.reference_rows)
    return np.concatenate([np.sort(design.pair_reference), np.arange(n_ref, design.n_pooled)])


def conformal_p_values(score: np.ndarray, design: Design) -> np.ndarray:
    """Per-class conformal p-values (module docstring) of the window rows: (m,), NaN for a
    class without calibration rows."""
    n_ref = len(design.reference_rows)
    codes = design.class_codes
    calibration = design.pair_reference
    out = np.full(design.n_pooled - n_ref, np.nan)
    for c in np.unique(codes[n_ref:]):
        cal = np.sort(score[calibration[codes[calibration] == c]])
        if len(cal) == 0:
            continue
        win_at = np.flatnonzero(codes[n_ref:] == c)
        at_least = len(cal) - np.searchsorted(cal, score[n_ref + win_at], side="left")
        out[win_at] = (1.0 + at_least) / (len(cal) + 1.0)
    return out
