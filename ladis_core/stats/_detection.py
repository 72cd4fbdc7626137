"""Detection rate and baseline detection rate of one layer (docs/statistics.md)."""

from __future__ import annotations

from typing import Any

import torch

from ladis_core.progress import ProgressCallback
from ladis_core.stats._protocol import make_options, run_protocol
from ladis_core.stats._results import DetectionRateResult, layer_result
from ladis_core.stats._validation import as_matrix, check_same_features, resolve_device


def detection_rate(
    reference: Any,
    inference: Any,
    *,
    n_samples: int = 100,
    n_repeats: int = 100,
    alpha: float = 0.05,
    n_permutations: int = 1000,
    seed: int | None = None,
    device: str | torch.device | None = None,
    reference_classes: Any = None,
    inference_classes: Any = None,
    kernel: str = "multi_rbf",
    bandwidth: str | float = "median",
    standardize: bool = False,
    progress: ProgressCallback | None = None,
) -> DetectionRateResult:
    """Share of R MMD tests (n reference vs n inference rows each) with p < alpha, in percent.

    Each repetition draws ``n_samples`` rows from each side at random without
    replacement, pairs reference row i with inference row i, and runs an MMD permutation
    test (unbiased MMD^2, kernel as in :func:`~ladis_core.stats.mmd_test`) whose
    B = ``n_permutations`` permutations swap the members of random subsets of pairs:
    ``p = (1 + #{b : MMD^2_b >= MMD^2_obs}) / (B + 1)``. The swaps form a permutation
    group, so the test is exact; with class-matched pairs it is exact given the classes
    (a full relabelling would mix the class composition and lose power). The B swaps are
    drawn once per call and shared by the repetitions.

    Args:
        reference: ndarray/tensor of shape (N_ref, ...) -- natural representations.
        inference: ndarray/tensor of shape (N_inf, ...) -- the window under test.
        n_samples: rows per side per repetition (>= 2); both sides need at least this
            many rows (an ``InputError`` says how many there are; nothing is clipped).
        n_repeats: R (>= 1).
        alpha: significance level in (0, 1).
        n_permutations: B (>= 1).
        seed: same seed, same numbers (no global RNG is touched).
        device: ``"cpu"``/``"cuda"``; default: the inputs' device.
        reference_classes, inference_classes: predicted classes, shapes (N_ref,) and
            (N_inf,); both given turn on class-matched sampling: reference row i of a
            repetition has the predicted class of inference row i. A class with too few
            reference rows is filled from other classes and reported in ``warnings``.
        kernel, bandwidth: as in :func:`mmd_test`.
        standardize: scale features with mean/std fitted on the reference only.
        progress: optional callback receiving :class:`~ladis_core.progress.Progress`.

    Returns:
        DetectionRateResult with ``rate``, ``p_values`` (shape (n_repeats,)), ...
    """
    opts = make_options(n_samples, n_repeats, alpha, n_permutations, kernel, bandwidth, standardize)
    ref = as_matrix(reference, "reference", finite=False)
    inf = as_matrix(inference, "inference", finite=False)
    check_same_features(ref, "reference", inf, "inference")
    run = run_protocol(
        [ref],
        [inf],
        opts,
        seed=seed,
        device=resolve_device(device, ref, inf),
        reference_classes=reference_classes,
        inference_classes=inference_classes,
        progress=progress,
        stage="detection rate",
    )
    return layer_result(
        run.layers[0], opts, class_matched=run.class_matched, baseline=False, warnings=run.warnings
    )


def baseline_detection_rate(
    reference: Any,
    *,
    n_samples: int = 100,
    n_repeats: int = 100,
    alpha: float = 0.05,
    n_permutations: int = 1000,
    seed: int | None = None,
    device: str | torch.device | None = None,
    reference_classes: Any = None,
    kernel: str = "multi_rbf",
    bandwidth: str | float = "median",
    standardize: bool = False,
    progress: ProgressCallback | None = None,
) -> DetectionRateResult:
    """The detection rate of natural data against itself: an estimate of the false-positive rate.

    The reference is split once, at random (from ``seed``), into two disjoint halves; one
    half plays the reference and the other the inference window in the protocol of
    :func:`detection_rate`. Should sit near or below ``alpha`` (in percent).
    Needs at least ``2 * n_samples`` reference rows. ``reference_classes`` turns on
    class-matched sampling between the halves. Other arguments as in :func:`detection_rate`.
    """
    opts = make_options(n_samples, n_repeats, alpha, n_permutations, kernel, bandwidth, standardize)
    ref = as_matrix(reference, "reference", finite=False)
    run = run_protocol(
        [ref],
        None,
        opts,
        seed=seed,
        device=resolve_device(device, ref),
        reference_classes=reference_classes,
        progress=progress,
        stage="baseline detection rate",
    )
    return layer_result(
        run.layers[0], opts, class_matched=run.class_matched, baseline=True, warnings=run.warnings
    )
