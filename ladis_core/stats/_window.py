"""The window test: one exact permutation test on every row of a window of traffic.

Statistic. For each layer ``l`` and kernel ``k`` (Gaussian at several bandwidths and a
Laplace kernel, :mod:`~ladis_core.stats._window_features`) the squared MMD between the
window and the reference reweighted to the window's class mix,

    T_lk = || sum_i w_i phi_lk(z_i) ||^2        (weights: :mod:`~ladis_core.stats._window_design`)

Permutations swap the members of random subsets of same-class (reference, window) pairs;
all ``B`` of them cost one product ``bits (B+1, P) @ Delta (P, D)``. Each ``T_lk`` is
standardised by the mean and standard deviation of its ``B + 1`` permutation values (a
symmetric function of the permutation set, so the test stays exact) and the decision uses

    M = max_{l, k} z_lk,        p = (1 + #{b : M_b >= M_obs}) / (B + 1)

in the spirit of MMDAgg (Schrab et al., JMLR 2023) and MMD-FUSE (Biggs et al., NeurIPS
2023): the kernels and layers that carry the evidence decide, and the level stays alpha
because the maximum is compared with the same maximum under the same permutations.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ladis_core.errors import InputError, check
from ladis_core.progress import ProgressCallback, report
from ladis_core.stats._share import DEFAULT_LAMBDA, DEFAULT_LEVEL
from ladis_core.stats._threads import threads_for
from ladis_core.stats._validation import (
    check_alpha,
    check_classes,
    check_finite,
    check_int,
    make_rng,
    resolve_device,
)
from ladis_core.stats._window_design import Design, make_design, random_bits
from ladis_core.stats._window_features import (
    FAMILIES,
    GAUSSIAN,
    LAPLACE,
    KernelSpec,
    layer_features,
)
from ladis_core.stats._window_inputs import Side, as_layers, distinct_rows, match_layers
from ladis_core.stats._window_permutations import permutation_outcome
from ladis_core.stats._window_results import NEIGHBOURS, WindowTestResult, assemble
from ladis_core.stats._window_scores import (
    DEFAULT_NEIGHBOURS,
    choose_landmarks,
    conformal_p_values,
    movable_ranks,
    movable_rows,
    neighbour_scores,
)

#: distinct rows each side needs (after repeats and uncomparable classes are left out)
MIN_ROWS = 10
#: (family, multiple of the median distance): three Gaussian bandwidths and a Laplace kernel
DEFAULT_KERNELS = (
    (GAUSSIAN, 0.5),
    (GAUSSIAN, 1.0),
    (GAUSSIAN, 2.0),
    (LAPLACE, 1.0),
)
DEFAULT_LANDMARKS = 256
DEFAULT_MAX_RANK = 128
MMD = "mmd"
#: the statistic families of the decision
STATISTICS = (NEIGHBOURS, MMD)


def window_test(
    reference: Any,
    inference: Any,
    *,
    reference_classes: Any = None,
    inference_classes: Any = None,
    alpha: float = 0.01,
    n_permutations: int = 1000,
    seed: int | None = None,
    device: str | torch.device | None = None,
    kernels: Sequence[tuple[str, float]] = DEFAULT_KERNELS,
    landmarks: int = DEFAULT_LANDMARKS,
    max_rank: int = DEFAULT_MAX_RANK,
    neighbours: int = DEFAULT_NEIGHBOURS,
    statistics: Sequence[str] = STATISTICS,
    reference_ids: Any = None,
    inference_ids: Any = None,
    share_lambda: float = DEFAULT_LAMBDA,
    share_level: float = DEFAULT_LEVEL,
    keep_permutations: bool = False,
    progress: ProgressCallback | None = None,
) -> WindowTestResult:
    """Test a whole window of traffic against the reference in one exact permutation test.

    Args:
        reference: ndarray/tensor of shape (N_ref, ...) or ``{layer: array}`` whose rows
            are the same inputs in every layer (natural data).
        inference: the window, the same form and layers, shape (N_inf, ...).
        reference_classes, inference_classes: predicted classes, shapes (N_ref,) and
            (N_inf,); both given make the test class-conditional (module docstring).
        alpha: level of ``reject`` (``p_value < alpha``).
        n_permutations: B (>= 1).
        seed: same seed, same numbers (no global RNG is touched).
        device: ``"cpu"``/``"cuda"``; default: the inputs' device.
        kernels: ``(family, multiplier)`` pairs, family ``"gaussian"`` or ``"laplace"`` at
            ``multiplier`` times the median distance between landmarks; each is one MMD
            statistic inside the maximum.
        landmarks: rows of the Nystroem feature maps (all rows when fewer: exact kernels).
        max_rank: features per kernel at most (top eigen-directions).
        neighbours: k of the per-input neighbour score (mean squared distance to the k
            nearest fit rows, :mod:`~ladis_core.stats._window_scores`).
        statistics: the families the decision uses, ``"neighbours"`` and/or ``"mmd"``
            (both by default; one alone is for ablations).
        reference_ids, inference_ids: one id per row (e.g. a hash of the request bytes);
            rows with the same id are one input. Default: identical rows in every layer.
        share_lambda, share_level: Storey's lambda and the interval's level of
            ``adversarial_share`` (:func:`~ladis_core.stats.estimate_share`).
        keep_permutations: keep the pairs, the labellings and every statistic under each
            of them in ``result.permutations`` (to check the test from outside).
        progress: optional callback (stages ``features``, ``permutations``).

    Returns:
        WindowTestResult: ``p_value``, ``reject``, per-layer ``layers`` p-values,
        ``adversarial_share``, ``duplicates``, ``warnings`` ...

    Raises:
        InputError: fewer than 10 distinct comparable rows on a side, mismatched layers
            or features, NaN/inf, or a bad option.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.normal(size=(200, 8))
        >>> window_test(ref, rng.normal(size=(100, 8)) + 0.5, seed=0).reject
        True
    """
    ref_layers, inf_layers = as_layers(reference, "reference"), as_layers(inference, "inference")
    names = match_layers(ref_layers, inf_layers)
    alpha = check_alpha(alpha)
    n_perm = check_int(n_permutations, "n_permutations", 1)
    specs = _check_kernels(kernels)
    n_land = check_int(landmarks, "landmarks", 2)
    rank = check_int(max_rank, "max_rank", 1)
    k = check_int(neighbours, "neighbours", 1)
    use = _check_statistics(statistics)
    rng = make_rng(seed)
    dev = resolve_device(device, *ref_layers.values(), *inf_layers.values())
    ref_side = distinct_rows(ref_layers, reference_ids, "reference")
    inf_side = distinct_rows(inf_layers, inference_ids, "inference")
    codes = check_classes(reference_classes, inference_classes, ref_side.rows, inf_side.rows)
    ref_codes = np.zeros(ref_side.rows, np.int64) if codes is None else codes.reference
    inf_codes = np.zeros(inf_side.rows, np.int64) if codes is None else codes.inference
    design = make_design(
        ref_codes[ref_side.distinct],
        inf_codes[inf_side.distinct],
        rng,
        class_name=(lambda c: codes.name(c)) if codes is not None else None,
    )
    _check_rows(design, ref_side, inf_side)
    landmark_rows = choose_landmarks(design, n_land, k, rng)
    n_land = len(landmark_rows)
    dims = sum(int(ref_layers[n].shape[1]) for n in names)
    width = len(names) * (len(specs) * rank + 2)
    work = 2.0 * design.n_pooled * n_land * dims + 2.0 * (n_perm + 1) * design.n_pairs * width
    with threads_for(work, dev):
        chosen = torch.from_numpy(landmark_rows).to(dev)
        row_classes = torch.from_numpy(design.class_codes).to(dev)
        report(progress, "features", 0, len(names))
        blocks: list[torch.Tensor] = []
        ranks: list[np.ndarray] = []
        movable = movable_rows(design)
        for i, name in enumerate(names):
            rows = _pooled(name, ref_layers, inf_layers, ref_side, inf_side, design).to(dev)
            rows = _scaled(rows, torch.from_numpy(design.fit_rows).to(dev))
            layer = layer_features(rows, chosen, specs, rank)
            blocks.extend(layer.blocks)
            distance = neighbour_scores(layer.sq, k, row_classes, row_classes[chosen])
            ranks.append(movable_ranks(distance, movable))
            del rows, layer
            report(progress, "features", i + 1, len(names))
        combined = movable_ranks(torch.from_numpy(np.sum(ranks, axis=0)), movable)
        linear = ranks + ([combined] if len(names) > 1 else [])
        scores = torch.from_numpy(np.stack(linear, axis=1)).to(dev)
        bits = torch.from_numpy(random_bits(rng, n_perm, design.n_pairs)).to(dev)
        report(progress, "permutations", 0, 1)
        features, sizes = torch.cat(blocks, dim=1), [b.shape[1] for b in blocks]
        del blocks
        groups = _groups(len(names), len(specs))
        outcome = permutation_outcome(
            features,
            sizes,
            scores,
            design,
            bits,
            groups=groups,
            families=_families(len(names), len(specs), use),
        )
        report(progress, "permutations", 1, 1)
    return assemble(
        outcome,
        names=names,
        labels=[s.label for s in specs] + [NEIGHBOURS],
        design=design,
        sides=(ref_side, inf_side),
        sample_p=conformal_p_values(combined, design),
        codes=codes,
        alpha=alpha,
        n_permutations=n_perm,
        share_options={"lam": share_lambda, "level": share_level},
        bits=bits.cpu().numpy() if keep_permutations else None,
    )


def _families(n_layers: int, n_kernels: int, use: tuple[str, ...]) -> list[list[int]]:
    """The families of the decision: the all-layer neighbour score (the layer's own with
    one layer), the per-layer neighbour scores (several layers), every kernel's MMD."""
    quadratic = n_layers * n_kernels
    out = []
    if NEIGHBOURS in use:
        out.append([quadratic + n_layers] if n_layers > 1 else [quadratic])
        if n_layers > 1:
            out.append(list(range(quadratic, quadratic + n_layers)))
    if MMD in use:
        out.append(list(range(quadratic)))
    return out


def _check_statistics(statistics: Any) -> tuple[str, ...]:
    chosen = (statistics,) if isinstance(statistics, str) else tuple(statistics)
    check(
        bool(chosen) and set(chosen) <= set(STATISTICS),
        f"statistics must be a non-empty subset of {STATISTICS}; got {statistics!r}",
    )
    return chosen


def _groups(n_layers: int, n_kernels: int) -> list[list[int]]:
    """Statistic indices of each layer (its kernels, then its neighbour score), then of
    the all-layer neighbour score (with several layers)."""
    quadratic = n_layers * n_kernels
    out = [[*range(i * n_kernels, (i + 1) * n_kernels), quadratic + i] for i in range(n_layers)]
    if n_layers > 1:
        out.append([quadratic + n_layers])
    return out


def _check_kernels(kernels: Any) -> list[KernelSpec]:
    message = (
        "kernels must be a non-empty sequence of (family, multiplier) pairs with family in "
        f"{FAMILIES} and a positive multiplier; got {kernels!r}"
    )
    try:
        pairs = [(str(f), m) for f, m in kernels]
    except (TypeError, ValueError):
        raise InputError(message) from None
    ok = bool(pairs) and all(
        f in FAMILIES
        and isinstance(m, numbers.Real)
        and not isinstance(m, bool)
        and np.isfinite(m)
        and m > 0
        for f, m in pairs
    )
    check(ok and len(set(pairs)) == len(pairs), message)
    return [KernelSpec(f, float(m)) for f, m in pairs]


def _check_rows(design: Design, ref: Side, inf: Side) -> None:
    for name, side, kept, dropped in (
        ("reference", ref, len(design.reference_rows), 0),
        ("inference", inf, len(design.window_rows), design.dropped_window_rows),
    ):
        check(
            kept >= MIN_ROWS,
            f"{name} has {kept} distinct comparable rows ({side.rows} rows, {side.repeats} "
            f"repeats{f', {dropped} of classes the reference lacks' if dropped else ''}); "
            f"the window test needs at least {MIN_ROWS}",
        )


def _pooled(
    name: str,
    ref_layers: dict[str, torch.Tensor],
    inf_layers: dict[str, torch.Tensor],
    ref: Side,
    inf: Side,
    design: Design,
) -> torch.Tensor:
    """The compared rows of one layer, reference first: (pooled, d) float32."""
    ref_rows = torch.from_numpy(ref.distinct[design.reference_rows])
    inf_rows = torch.from_numpy(inf.distinct[design.window_rows])
    x = check_finite(ref_layers[name], f"reference[{name!r}]")[ref_rows.to(ref_layers[name].device)]
    y = check_finite(inf_layers[name], f"inference[{name!r}]")[inf_rows.to(inf_layers[name].device)]
    return torch.cat([x.to(y.device), y])


def _scaled(rows: torch.Tensor, fit: torch.Tensor) -> torch.Tensor:
    """Rows centred and scaled by the fit rows' mean/std (rows no permutation moves, so
    every labelling sees the same scaling); constant features keep scale 1."""
    ref = rows[fit]
    std = ref.std(dim=0, unbiased=False, keepdim=True)
    return (rows - ref.mean(dim=0, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))
