"""Input checks shared by the statistics functions.

Every user-facing function converts its arrays with :func:`as_matrix` and its options with
the ``check_*`` helpers, so that bad input raises :class:`~ladis_core.errors.InputError`
(a ``ValueError``) whose message names the argument and the offending value.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ladis_core import devices
from ladis_core.errors import InputError, check

KERNELS = ("multi_rbf", "rbf")


def as_matrix(value: Any, name: str, *, finite: bool = True) -> torch.Tensor:
    """Return ``value`` as a float32 tensor of shape (n_rows, n_features).

    Accepts NumPy arrays, torch tensors (any device) and nested sequences. A 1-D input is
    read as ``n`` rows of one feature; higher-rank input (e.g. conv activations of shape
    (n, C, H, W)) is flattened per row. With ``finite`` (default) also
    :func:`check_finite`; callers that pick a thread count first check it afterwards.
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        check(not tensor.is_complex(), f"{name} must be real-valued; got dtype {tensor.dtype}")
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:  # ragged nested lists
            raise InputError(
                f"{name} must be a numeric array; could not convert it ({exc})"
            ) from exc
        check(
            array.dtype.kind in "biuf",
            f"{name} must be a numeric array; got dtype {array.dtype} (shape {array.shape})",
        )
        check(array.ndim >= 1, f"{name} must be an array of rows; got a scalar")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    shape = tuple(tensor.shape)
    check(tensor.ndim >= 1, f"{name} must be an array of rows; got a scalar")
    check(shape[0] > 0, f"{name} is empty: it has 0 rows (shape {shape})")
    tensor = tensor.reshape(shape[0], -1)
    check(tensor.shape[1] > 0, f"{name} has rows with 0 features (shape {shape})")
    if finite:
        check_finite(tensor, name)
    return tensor


def check_finite(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``tensor`` as float32, raising if it holds NaN or infinite values."""
    tensor = tensor.to(torch.float32)
    ok = torch.isfinite(tensor)
    if not bool(ok.all()):
        bad = int((~ok).sum())
        raise InputError(
            f"{name} contains {bad} NaN or infinite value(s) out of {tensor.numel()} "
            f"(values beyond the float32 range count as infinite)"
        )
    return tensor


def check_same_features(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """Both matrices must have the same number of (flattened) features."""
    check(
        a.shape[1] == b.shape[1],
        f"{a_name} and {b_name} must have the same number of features; "
        f"got {a.shape[1]} and {b.shape[1]}",
    )


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer (not bool) that is at least ``minimum``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    check(ok and int(value) >= minimum, f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_alpha(alpha: Any) -> float:
    """A significance level strictly between 0 and 1."""
    ok = isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
    check(ok and 0.0 < float(alpha) < 1.0, f"alpha must be in (0, 1); got {alpha!r}")
    return float(alpha)


def check_kernel(kernel: Any) -> str:
    check(kernel in KERNELS, f"kernel must be one of {KERNELS}; got {kernel!r}")
    return str(kernel)


def check_bandwidth(bandwidth: Any) -> float | None:
    """``"median"`` (returns None: use the median heuristic) or a positive finite float."""
    if isinstance(bandwidth, str):
        check(
            bandwidth == "median",
            f"bandwidth must be 'median' or a positive number; got {bandwidth!r}",
        )
        return None
    ok = isinstance(bandwidth, numbers.Real) and not isinstance(bandwidth, bool)
    check(
        ok and np.isfinite(float(bandwidth)) and float(bandwidth) > 0,
        f"bandwidth must be 'median' or a positive number; got {bandwidth!r}",
    )
    return float(bandwidth)


def make_rng(seed: Any) -> np.random.Generator:
    """A fresh generator from ``seed`` (None, a non-negative int or a Generator)."""
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    ok = isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and int(seed) >= 0
    check(ok, f"seed must be None or a non-negative integer; got {seed!r}")
    return np.random.default_rng(int(seed))


def resolve_device(device: Any, *tensors: torch.Tensor) -> torch.device:
    """The device to compute on: ``device`` if given, else the inputs' GPU if any, else CPU."""
    if device is None:
        for tensor in tensors:
            if tensor.device.type != "cpu":
                return tensor.device
    return devices.resolve_device(device)


@dataclass(frozen=True)
class ClassCodes:
    """Class labels as integer codes shared by both sides; ``names[code]`` is the label."""

    reference: np.ndarray
    inference: np.ndarray
    names: np.ndarray

    def name(self, code: int) -> Any:
        value = self.names[code]
        return value.item() if hasattr(value, "item") else value


def check_classes(
    reference_classes: Any, inference_classes: Any, n_reference: int, n_inference: int
) -> ClassCodes | None:
    """Validate the class arrays of class-matched sampling (None when neither is given)."""
    if reference_classes is None and inference_classes is None:
        return None
    check(
        reference_classes is not None and inference_classes is not None,
        "class-matched sampling needs both reference_classes and inference_classes; "
        f"got only {'reference_classes' if inference_classes is None else 'inference_classes'}",
    )
    ref = _labels(reference_classes, "reference_classes", n_reference, "reference")
    inf = _labels(inference_classes, "inference_classes", n_inference, "inference")
    try:
        names, codes = np.unique(np.concatenate([ref, inf]), return_inverse=True)
    except TypeError as exc:
        raise InputError(
            f"class labels must be comparable (all numbers or all strings): {exc}"
        ) from exc
    codes = codes.reshape(-1).astype(np.int64)
    return ClassCodes(codes[: len(ref)], codes[len(ref) :], names)


def _labels(value: Any, name: str, n_rows: int, data_name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    labels = np.asarray(value)
    check(labels.ndim == 1, f"{name} must be 1-D (one label per row); got shape {labels.shape}")
    check(
        len(labels) == n_rows,
        f"{name} has {len(labels)} labels but {data_name} has {n_rows} rows",
    )
    if labels.dtype.kind == "f":
        check(bool(np.isfinite(labels).all()), f"{name} contains NaN or infinite labels")
    return labels


def format_names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)
