"""multi_layer_detection_rate: per-layer consistency and the max-statistic combination."""

from __future__ import annotations

import numpy as np
import pytest

from ladis_core import (
    MultiLayerResult,
    baseline_detection_rate,
    detection_rate,
    multi_layer_detection_rate,
)

FAST = {"n_samples": 30, "n_repeats": 20, "n_permutations": 200}


def _layers(x: np.ndarray) -> dict[str, np.ndarray]:
    """Three 'layers' of the same inputs: independent feature groups of x (N, 24)."""
    return {"conv": x[:, :8], "block": x[:, 8:16].reshape(-1, 2, 2, 2), "avgpool": x[:, 16:]}


def _inputs(seed, rows, shift_cols=slice(0, 0), shift=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 24)).astype(np.float32)
    x[:, shift_cols] += shift
    return x


def test_layers_equal_single_layer_calls_with_the_same_seed():
    ref, inf = _layers(_inputs(0, 300)), _layers(_inputs(1, 200, slice(16, 24), 0.3))
    res = multi_layer_detection_rate(ref, inf, seed=4, standardize=True, **FAST)
    assert isinstance(res, MultiLayerResult) and res.method == "max-statistic"
    assert list(res.layers) == ["conv", "block", "avgpool"]
    for name in ref:
        single = detection_rate(ref[name], inf[name], seed=4, standardize=True, **FAST)
        assert np.array_equal(res.layers[name].p_values, single.p_values)
        assert np.array_equal(res.layers[name].statistics, single.statistics)
    assert res.rates == {n: r.rate for n, r in res.layers.items()}
    assert res.combined.statistic_name == "max-statistic"
    assert res.combined.p_values.shape == (20,) and np.isnan(res.combined.bandwidths).all()


def test_baseline_layers_equal_single_layer_baseline():
    ref = _layers(_inputs(2, 300))
    res = multi_layer_detection_rate(ref, None, baseline=True, seed=3, **FAST)
    for name in ref:
        single = baseline_detection_rate(ref[name], seed=3, **FAST)
        assert np.array_equal(res.layers[name].p_values, single.p_values)
    assert res.combined.baseline


def test_one_layer_combination_is_the_layer_test():
    ref, inf = _inputs(3, 300), _inputs(4, 200, slice(0, 24), 0.1)
    res = multi_layer_detection_rate({"a": ref}, {"a": inf}, seed=0, **FAST)
    assert np.max(np.abs(res.combined.p_values - res.layers["a"].p_values)) <= 1 / 201


def test_combined_decision_keeps_its_level():
    """Three independent layers under H0: the uncorrected 'any layer' rule would reject
    ~14 % of repetitions; the max-statistic combination stays at alpha."""
    ref, inf = _layers(_inputs(5, 6000)), _layers(_inputs(6, 6000))
    res = multi_layer_detection_rate(
        ref, inf, n_samples=30, n_repeats=300, n_permutations=200, seed=0
    )
    assert res.combined.n_detected <= 26  # binomial(300, 0.05) upper 0.1 % bound
    any_layer = np.mean(np.min([r.p_values for r in res.layers.values()], axis=0) < 0.05)
    assert any_layer > 0.09
    assert res.combined.rate < 100 * any_layer


def test_combined_decision_detects_a_shift_in_one_layer():
    ref, inf = _layers(_inputs(7, 600)), _layers(_inputs(8, 400, slice(16, 24), 0.6))
    res = multi_layer_detection_rate(ref, inf, seed=0, **FAST)
    assert res.layers["avgpool"].rate >= 95.0
    assert res.layers["conv"].rate <= 25.0
    assert res.combined.rate >= 90.0


def test_class_matched_multi_layer():
    rng = np.random.default_rng(9)
    ref, inf = _layers(_inputs(10, 400)), _layers(_inputs(11, 300))
    ref_cls, inf_cls = rng.integers(0, 3, 400), rng.integers(0, 3, 300)
    res = multi_layer_detection_rate(
        ref, inf, reference_classes=ref_cls, inference_classes=inf_cls, seed=0, **FAST
    )
    assert res.combined.class_matched and all(r.class_matched for r in res.layers.values())


@pytest.mark.parametrize(
    ("reference", "inference", "match"),
    [
        ({}, {}, "non-empty dict"),
        ([np.zeros((50, 3))], [np.zeros((50, 3))], "non-empty dict"),
        (
            {"a": np.zeros((50, 3))},
            {"b": np.zeros((50, 3))},
            "same layers.*missing in inference: \\['a'\\]",
        ),
        (
            {"a": np.zeros((50, 3)), "b": np.zeros((49, 3))},
            {"a": np.zeros((50, 3)), "b": np.zeros((50, 3))},
            "same rows",
        ),
        ({"a": np.zeros((50, 3))}, {"a": np.zeros((50, 4))}, "same number of features"),
        ({"a": np.zeros((50, 3))}, None, "inference is required"),
        (
            {"a": np.full((50, 3), np.nan)},
            {"a": np.zeros((50, 3))},
            "reference\\['a'\\] contains 150 NaN",
        ),
    ],
)
def test_bad_layer_dicts_raise(reference, inference, match):
    from ladis_core.errors import InputError

    with pytest.raises(InputError, match=match):
        multi_layer_detection_rate(
            reference, inference, n_samples=10, n_repeats=2, n_permutations=20
        )
