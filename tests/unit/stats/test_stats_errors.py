"""Bad input raises InputError (a ValueError) naming the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ladis_core import baseline_detection_rate, detection_rate, mmd_test
from ladis_core.errors import InputError

RNG = np.random.default_rng(0)
REF = RNG.normal(size=(120, 4)).astype(np.float32)
INF = RNG.normal(size=(80, 4)).astype(np.float32)


def _with(value, row=0, col=0):
    out = INF.copy()
    out[row, col] = value
    return out


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inference": np.zeros((0, 4))}, "inference is empty: it has 0 rows"),
        ({"reference": np.zeros((50, 0))}, "reference has rows with 0 features"),
        ({"inference": INF[:, :3]}, "same number of features; got 4 and 3"),
        ({"inference": _with(np.nan)}, "inference contains 1 NaN or infinite value"),
        ({"inference": _with(np.inf, 2, 1)}, "inference contains 1 NaN or infinite value"),
        ({"reference": np.array([["a", "b"]] * 50)}, "reference must be a numeric array"),
        ({"reference": 3.0}, "reference must be an array of rows; got a scalar"),
        (
            {"n_samples": 81},
            "n_samples=81 needs at least 81 rows in inference, but inference has 80",
        ),
        ({"n_samples": 121}, "needs at least 121 rows in reference, but reference has 120"),
        ({"n_samples": 1}, "n_samples must be an integer >= 2; got 1"),
        ({"alpha": 0.0}, "alpha must be in \\(0, 1\\); got 0.0"),
        ({"alpha": 1.0}, "alpha must be in \\(0, 1\\); got 1.0"),
        ({"alpha": -0.1}, "alpha must be in \\(0, 1\\); got -0.1"),
        ({"n_permutations": 0}, "n_permutations must be an integer >= 1; got 0"),
        ({"n_permutations": 10.5}, "n_permutations must be an integer >= 1; got 10.5"),
        ({"n_repeats": 0}, "n_repeats must be an integer >= 1; got 0"),
        ({"n_repeats": True}, "n_repeats must be an integer >= 1; got True"),
        ({"kernel": "linear"}, "kernel must be one of \\('multi_rbf', 'rbf'\\); got 'linear'"),
        ({"bandwidth": -1.0}, "bandwidth must be 'median' or a positive number; got -1.0"),
        ({"bandwidth": "silverman"}, "got 'silverman'"),
        ({"seed": -3}, "seed must be None or a non-negative integer; got -3"),
        ({"device": "tpu:7"}, "device must be e.g. 'cpu' or 'cuda'; got 'tpu:7'"),
        (
            {"reference_classes": np.zeros(120)},
            "needs both reference_classes and inference_classes",
        ),
        (
            {"reference_classes": np.zeros(119), "inference_classes": np.zeros(80)},
            "reference_classes has 119 labels but reference has 120 rows",
        ),
        (
            {"reference_classes": np.zeros(120), "inference_classes": np.zeros((80, 2))},
            "inference_classes must be 1-D",
        ),
    ],
)
def test_detection_rate_rejects(kwargs, match):
    args = {
        "reference": REF,
        "inference": INF,
        "n_samples": 20,
        "n_repeats": 2,
        "n_permutations": 20,
    }
    args.update(kwargs)
    with pytest.raises(InputError, match=match) as info:
        detection_rate(args.pop("reference"), args.pop("inference"), **args)
    assert isinstance(info.value, ValueError)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda():
    with pytest.raises(InputError, match="device='cuda' was asked for but CUDA is not available"):
        mmd_test(REF, INF, device="cuda")


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (REF[:1], INF, {}, "x needs at least 2 rows for the unbiased MMD\\^2; got 1"),
        (REF, INF[:1], {}, "y needs at least 2 rows"),
        (REF, np.zeros((0, 4)), {}, "y is empty"),
        (REF, INF[:, :2], {}, "x and y must have the same number of features; got 4 and 2"),
        (REF, _with(np.nan), {}, "y contains 1 NaN"),
        (REF, INF, {"n_permutations": 0}, "n_permutations must be an integer >= 1; got 0"),
        (REF, INF, {"bandwidth": 0.0}, "bandwidth must be 'median' or a positive number; got 0.0"),
        (REF, [[1.0, 2.0], [3.0]], {}, "y must be a numeric array"),
    ],
)
def test_mmd_test_rejects(x, y, kwargs, match):
    with pytest.raises(InputError, match=match):
        mmd_test(x, y, **kwargs)


def test_baseline_rejects():
    with pytest.raises(InputError, match="at least 200 reference rows, but reference has 120"):
        baseline_detection_rate(REF, n_samples=100)
