"""The detection-rate protocol shared by the single- and multi-layer entry points.

R repetitions; each draws ``n`` reference and ``n`` inference rows without replacement
(class-matched when classes are given) and runs the paired-swap MMD permutation test on
every layer with the same rows and the same pool of B swaps (drawn once per call from the
seed). The RNG is consumed in a fixed order -- (baseline split), row indices, swap pool --
so one seed gives the same numbers on every layer and in every entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ladis_core.errors import check
from ladis_core.progress import ProgressCallback
from ladis_core.stats._engine import (
    CombinedOutcome,
    LayerOutcome,
    Scaling,
    run_paired_tests,
    swap_pool,
)
from ladis_core.stats._prepare import center
from ladis_core.stats._sampling import check_enough_rows, draw_indices, split_halves
from ladis_core.stats._threads import threads_for
from ladis_core.stats._validation import (
    ClassCodes,
    check_alpha,
    check_bandwidth,
    check_classes,
    check_finite,
    check_int,
    check_kernel,
    make_rng,
)


@dataclass(frozen=True)
class Options:
    """Validated options of the protocol."""

    n_samples: int
    n_repeats: int
    alpha: float
    n_permutations: int
    kernel: str
    bandwidth: float | None
    standardize: bool


def make_options(
    n_samples: Any,
    n_repeats: Any,
    alpha: Any,
    n_permutations: Any,
    kernel: Any,
    bandwidth: Any,
    standardize: Any,
) -> Options:
    return Options(
        n_samples=check_int(n_samples, "n_samples", 2),
        n_repeats=check_int(n_repeats, "n_repeats", 1),
        alpha=check_alpha(alpha),
        n_permutations=check_int(n_permutations, "n_permutations", 1),
        kernel=check_kernel(kernel),
        bandwidth=check_bandwidth(bandwidth),
        standardize=bool(standardize),
    )


@dataclass
class ProtocolRun:
    layers: list[LayerOutcome]
    combined: CombinedOutcome | None
    warnings: list[str]
    class_matched: bool


def run_protocol(
    references: list[torch.Tensor],
    inferences: list[torch.Tensor] | None,
    opts: Options,
    *,
    seed: Any,
    device: torch.device,
    reference_classes: Any = None,
    inference_classes: Any = None,
    combine: bool = False,
    names: list[str] | None = None,
    progress: ProgressCallback | None = None,
    stage: str = "detection rate",
) -> ProtocolRun:
    """Run the protocol on matching per-layer matrices (``inferences=None``: baseline).

    ``names`` (layer names) only label error messages. Inputs are checked for NaN/inf
    here, once the thread count for the work is chosen.
    """
    n = opts.n_samples
    dims = sum(r.shape[1] for r in references)
    work = 2.0 * opts.n_repeats * (2 * n) ** 2 * (dims + len(references) * opts.n_permutations / 4)
    with threads_for(work, device):
        return _run_protocol(
            references,
            inferences,
            opts,
            seed=seed,
            device=device,
            reference_classes=reference_classes,
            inference_classes=inference_classes,
            combine=combine,
            names=names,
            progress=progress,
            stage=stage,
        )


def _run_protocol(
    references: list[torch.Tensor],
    inferences: list[torch.Tensor] | None,
    opts: Options,
    *,
    seed: Any,
    device: torch.device,
    reference_classes: Any,
    inference_classes: Any,
    combine: bool,
    names: list[str] | None,
    progress: ProgressCallback | None,
    stage: str,
) -> ProtocolRun:
    labels = [""] if names is None else [f"[{name!r}]" for name in names]
    references = [
        check_finite(r, f"reference{lab}") for r, lab in zip(references, labels, strict=True)
    ]
    if inferences is not None:
        inferences = [
            check_finite(i, f"inference{lab}") for i, lab in zip(inferences, labels, strict=True)
        ]
    rng = make_rng(seed)
    n, n_ref = opts.n_samples, references[0].shape[0]
    warnings: list[str] = []
    if inferences is None:  # baseline: two disjoint random halves of the reference
        check(
            inference_classes is None,
            "baseline_detection_rate takes reference_classes only; got inference_classes",
        )
        check(
            n_ref // 2 >= n,
            f"the baseline needs two disjoint halves of n_samples={n} rows, i.e. at least "
            f"{2 * n} reference rows, but reference has {n_ref}; lower n_samples",
        )
        half_x, half_y = split_halves(rng, n_ref)
        classes = None
        if reference_classes is not None:
            codes = check_classes(reference_classes, reference_classes, n_ref, n_ref)
            assert codes is not None
            classes = ClassCodes(codes.reference[half_x], codes.reference[half_y], codes.names)
        x_idx, y_idx, warns = draw_indices(
            rng, len(half_x), len(half_y), n, opts.n_repeats, classes
        )
        x_idx, y_idx = half_x[x_idx], half_y[y_idx]
        data = [center(r.to(device), [])[0] for r in references]
    else:
        n_inf = inferences[0].shape[0]
        check_enough_rows(n, n_ref, "reference")
        check_enough_rows(n, n_inf, "inference")
        classes = check_classes(reference_classes, inference_classes, n_ref, n_inf)
        x_idx, y_idx, warns = draw_indices(rng, n_ref, n_inf, n, opts.n_repeats, classes)
        y_idx = y_idx + n_ref
        data = [
            torch.cat(center(r.to(device), [i.to(device)]))
            for r, i in zip(references, inferences, strict=True)
        ]
    warnings.extend(warns)
    min_p = 1.0 / (opts.n_permutations + 1)
    if min_p >= opts.alpha:
        warnings.append(
            f"n_permutations={opts.n_permutations} is too small for alpha={opts.alpha:g}: the "
            f"smallest possible p-value is {min_p:.3g}, so no repetition can be detected; "
            f"use n_permutations >= {int(np.ceil(1 / opts.alpha))}"
        )
    pool = swap_pool(rng, opts.n_permutations, n, device)
    scaling = Scaling(n_ref, y_is_reference=inferences is None) if opts.standardize else None
    outcomes, combined = run_paired_tests(
        data,
        x_idx,
        y_idx,
        pool,
        kernel=opts.kernel,
        bandwidth=opts.bandwidth,
        combine=combine,
        scaling=scaling,
        progress=progress,
        stage=stage,
    )
    return ProtocolRun(outcomes, combined, warnings, classes is not None)
