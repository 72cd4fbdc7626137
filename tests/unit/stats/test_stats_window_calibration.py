"""window_test on null data of several shapes: false-positive rate within the binomial bound
of alpha; power on shifted data; the share estimate on natural and contaminated windows.

Every test draws independent data sets (reference and window) per repetition, so the
rejection count of a calibrated test is Binomial(n, alpha) at most.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from ladis_core import window_test
from tests.unit.stats.test_stats_calibration import binomial_upper_bound, null_sample

ALPHA = 0.05
N_TESTS = 120


def _relu(rows: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Post-ReLU features: many exact zeros, a shared positive offset."""
    weights = np.random.default_rng(5).normal(size=(8, d))
    z = (rng.normal(size=(rows, 8, 1)) * weights[None]).sum(axis=1)
    return np.maximum(z, 0.0).astype(np.float32)


def _draw(shape: str, rows: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return _relu(rows, d, rng) if shape == "relu" else null_sample(shape, rows, d, rng)


def _class_data(rows: int, mix: np.ndarray, rng: np.random.Generator):
    """Rows whose features depend on their class (10 well separated means)."""
    classes = rng.choice(len(mix), size=rows, p=mix)
    centres = np.random.default_rng(6).normal(scale=3.0, size=(len(mix), 6))
    return (centres[classes] + rng.normal(size=(rows, 6))).astype(np.float32), classes


@pytest.mark.parametrize(
    ("shape", "d"), [("gaussian", 8), ("student_t3", 32), ("low_rank", 256), ("relu", 64)]
)
def test_false_positive_rate_on_null_data_of_several_shapes(shape, d):
    rng = np.random.default_rng([zlib.crc32(shape.encode()), d])
    rejections = 0
    for i in range(N_TESTS):
        ref, win = _draw(shape, 60, d, rng), _draw(shape, 30, d, rng)
        rejections += window_test(ref, win, alpha=ALPHA, n_permutations=199, seed=i).reject
    assert rejections <= binomial_upper_bound(N_TESTS)


def test_calibrated_when_the_class_mix_changes():
    """The window holds mostly two classes; given its class a row is natural."""
    rng = np.random.default_rng(21)
    uniform = np.full(10, 0.1)
    skewed = np.r_[0.45, 0.35, np.full(8, 0.025)]
    rejections = 0
    for i in range(N_TESTS):
        ref, ref_c = _class_data(120, uniform, rng)
        win, win_c = _class_data(40, skewed, rng)
        res = window_test(
            ref,
            win,
            reference_classes=ref_c,
            inference_classes=win_c,
            alpha=ALPHA,
            n_permutations=199,
            seed=i,
        )
        rejections += res.reject
    assert rejections <= binomial_upper_bound(N_TESTS)


def test_class_mix_change_alone_is_flagged_without_classes():
    """The same windows tested without classes: the mix change is (rightly) a difference,
    which is why the job conditions on the predicted class."""
    rng = np.random.default_rng(22)
    ref, _ = _class_data(120, np.full(10, 0.1), rng)
    win, _ = _class_data(40, np.r_[0.45, 0.35, np.full(8, 0.025)], rng)
    assert window_test(ref, win, alpha=ALPHA, n_permutations=199, seed=0).reject


def test_repeated_rows_do_not_raise_the_false_positive_rate():
    """A quarter of each window repeats earlier rows (retrying clients). Tested once per
    input the rate stays within the bound; treating repeats as distinct inputs (ids all
    different) inflates it -- the failure this guards against."""
    rng = np.random.default_rng(23)
    distinct = inflated = 0
    for i in range(N_TESTS):
        ref = null_sample("gaussian", 80, 64, rng)
        base = null_sample("gaussian", 30, 64, rng)
        win = np.vstack([base, base[:10]])
        common = dict(alpha=ALPHA, n_permutations=199, seed=i)
        distinct += window_test(ref, win, **common).reject
        inflated += window_test(ref, win, inference_ids=np.arange(len(win)), **common).reject
    assert distinct <= binomial_upper_bound(N_TESTS)
    assert inflated > binomial_upper_bound(N_TESTS)


@pytest.mark.parametrize(("share", "shift"), [(0.3, 1.0), (1.0, 0.35)])
def test_power_on_shifted_data(share, shift):
    rng = np.random.default_rng(24)
    rejections = 0
    for i in range(20):
        ref = rng.normal(size=(200, 16)).astype(np.float32)
        win = rng.normal(size=(100, 16)).astype(np.float32)
        win[: int(share * 100)] += shift
        rejections += window_test(ref, win, alpha=0.01, n_permutations=500, seed=i).reject
    assert rejections >= 18


def test_power_when_crafted_inputs_take_another_class():
    """Crafted rows predicted as class 1 but lying among class 0's natural rows: only a
    class-conditional comparison sees them."""
    rng = np.random.default_rng(25)
    mix = np.full(10, 0.1)
    ref, ref_c = _class_data(300, mix, rng)
    win, win_c = _class_data(150, mix, rng)
    crafted = np.flatnonzero(win_c == 0)[:12]
    win_c = win_c.copy()
    win_c[crafted] = 1
    res = window_test(ref, win, reference_classes=ref_c, inference_classes=win_c, seed=0)
    assert res.reject
    by_label = {c.label: c for c in res.classes}
    assert by_label[1].share is not None and by_label[1].share.estimate > 0.2


def test_share_interval_covers_the_true_share():
    rng = np.random.default_rng(26)
    covered, estimates = 0, {0.0: [], 0.25: []}
    for i in range(40):
        share = 0.0 if i % 2 else 0.25
        ref = rng.normal(size=(240, 8)).astype(np.float32)
        win = rng.normal(size=(120, 8)).astype(np.float32)
        win[: int(share * 120)] += 3.0  # crafted rows that clearly look crafted
        est = window_test(ref, win, seed=i, n_permutations=200).adversarial_share
        covered += est.low <= share <= est.high
        estimates[share].append(est.estimate)
    assert covered >= 36
    assert np.mean(estimates[0.0]) < 0.08
    assert 0.17 < np.mean(estimates[0.25]) < 0.33
