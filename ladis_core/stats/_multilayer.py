"""Detection rate over several layers with one combined decision that keeps level alpha.

Combination ("max-statistic"): every repetition uses the same reference/inference rows and
the same B swaps on every layer (rows correspond across layers: they are the same inputs).
Layer l's statistic ``T_l = e^T H_l e`` is divided by the exact standard deviation of its
swap distribution, ``sd_l = sqrt(2 ||H_l||_F^2)`` (a swap-invariant function of the data),
and the combined statistic ``M = max_l T_l / sd_l`` is compared with the same maximum under
each of the B swaps: ``p = (1 + #{b : M_b >= M_obs}) / (B + 1)``. Because the swaps act on
all layers jointly, this is an exact permutation test of "same joint distribution of the
layers", so its false-positive rate is at most alpha whatever the dependence between
layers -- no Bonferroni loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ladis_core.errors import check
from ladis_core.progress import ProgressCallback
from ladis_core.stats._protocol import make_options, run_protocol
from ladis_core.stats._results import MultiLayerResult, combined_result, layer_result
from ladis_core.stats._validation import (
    as_matrix,
    check_same_features,
    format_names,
    resolve_device,
)


def multi_layer_detection_rate(
    reference: Mapping[str, Any],
    inference: Mapping[str, Any] | None = None,
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
    baseline: bool = False,
) -> MultiLayerResult:
    """Per-layer detection rates and one combined ("max-statistic") rate.

    Args:
        reference: ``{layer_name: array of shape (N_ref, ...)}``; row i of every layer is
            the same input.
        inference: ``{layer_name: array of shape (N_inf, ...)}`` with the same layer names;
            not used (may be None) when ``baseline`` is True.
        baseline: run the baseline protocol instead (the reference split once into two
            disjoint halves, the same split for every layer).
        Other arguments: as in :func:`detection_rate`; classes are per row (shared by
        all layers).

    Returns:
        MultiLayerResult: ``layers[name]`` equals what :func:`detection_rate` (or
        :func:`baseline_detection_rate`) returns for that layer with the same seed;
        ``combined`` holds the max-statistic p-values and rate; ``method`` is
        ``"max-statistic"``.
    """
    opts = make_options(n_samples, n_repeats, alpha, n_permutations, kernel, bandwidth, standardize)
    names, refs = _layers(reference, "reference")
    infs = None
    if not baseline:
        check(inference is not None, "inference is required unless baseline=True")
        assert inference is not None
        inf_names, infs = _layers(inference, "inference")
        missing, extra = set(names) - set(inf_names), set(inf_names) - set(names)
        check(
            not missing and not extra,
            "reference and inference must have the same layers; "
            f"missing in inference: [{format_names(sorted(missing))}], "
            f"missing in reference: [{format_names(sorted(extra))}]",
        )
        infs = [infs[inf_names.index(name)] for name in names]
        for name, r, i in zip(names, refs, infs, strict=True):
            check_same_features(r, f"reference[{name!r}]", i, f"inference[{name!r}]")
    run = run_protocol(
        refs,
        infs,
        opts,
        names=names,
        seed=seed,
        device=resolve_device(device, *refs, *(infs or [])),
        reference_classes=reference_classes,
        inference_classes=None if baseline else inference_classes,
        combine=True,
        progress=progress,
        stage="multi-layer baseline" if baseline else "multi-layer detection rate",
    )
    flags = {"class_matched": run.class_matched, "baseline": baseline, "warnings": run.warnings}
    assert run.combined is not None
    return MultiLayerResult(
        layers={
            name: layer_result(out, opts, **flags)
            for name, out in zip(names, run.layers, strict=True)
        },
        combined=combined_result(run.combined, opts, **flags),
    )


def _layers(value: Any, name: str) -> tuple[list[str], list[torch.Tensor]]:
    check(
        isinstance(value, Mapping) and len(value) > 0,
        f"{name} must be a non-empty dict {{layer_name: array}}; got {type(value).__name__}"
        + (" with no layers" if isinstance(value, Mapping) else ""),
    )
    names = [str(k) for k in value]
    mats = [as_matrix(value[k], f"{name}[{k!r}]", finite=False) for k in value]
    rows = {n: m.shape[0] for n, m in zip(names, mats, strict=True)}
    check(
        len(set(rows.values())) == 1,
        f"every layer of {name} must have the same rows (the same inputs); got row counts {rows}",
    )
    return names, mats
