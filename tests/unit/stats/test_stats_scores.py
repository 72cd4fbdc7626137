"""Per-input scores: witness function calibrated on held-out reference rows."""

from __future__ import annotations

import numpy as np
import pytest

from ladis_core import sample_scores
from ladis_core.errors import InputError
from ladis_core.stats import SampleScoreResult, sample_scores_with_pvalues


def _window(seed, n_ref=600, n_nat=150, n_adv=0, d=16, shift=3.0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n_ref, d)).astype(np.float32)
    nat = rng.normal(size=(n_nat, d))
    adv = rng.normal(size=(n_adv, d)) * 0.5 + shift  # a tight off-manifold cluster
    return ref, np.concatenate([nat, adv]).astype(np.float32)


def test_shapes_ranges_and_relation_between_scores_and_p_values():
    ref, inf = _window(0, n_adv=30)
    res = sample_scores_with_pvalues(ref, inf, seed=0)
    assert isinstance(res, SampleScoreResult)
    assert res.scores.shape == res.p_values.shape == res.witness.shape == (180,)
    assert res.n_calibration == 300 and res.n_fit == 300
    assert res.calibration_witness.shape == (300,)
    assert np.all(res.p_values >= 1 / 301) and np.all(res.p_values <= 1)
    assert np.allclose(res.scores, -np.log10(res.p_values))
    assert np.array_equal(sample_scores(ref, inf, seed=0), res.scores)
    ranking = res.ranking()
    assert sorted(ranking.tolist()) == list(range(180))
    assert np.all(np.diff(res.p_values[ranking]) >= 0)
    assert np.array_equal(res.top(10), ranking[:10])


def test_suspicious_inputs_rank_first():
    ref, inf = _window(1, n_adv=30)
    res = sample_scores_with_pvalues(ref, inf, seed=0)
    is_adv = np.arange(len(inf)) >= 150
    assert is_adv[res.top(30)].mean() >= 0.9
    # area under the ROC curve of the scores
    ranks = np.argsort(np.argsort(res.witness))
    auc = (ranks[is_adv].mean() - (is_adv.sum() - 1) / 2) / (~is_adv).sum()
    assert auc >= 0.95
    assert res.scores[is_adv].min() > np.median(res.scores[~is_adv])


def test_natural_inputs_get_uniform_p_values_in_every_window():
    """Comparable across calls: natural rows are conformally calibrated whatever the window."""
    fractions, means = [], []
    for seed in range(8):
        ref, inf = _window(10 + seed, n_adv=0 if seed % 2 else 40)
        res = sample_scores_with_pvalues(ref, inf, seed=seed)
        natural = res.p_values[:150]
        fractions.append(np.mean(natural <= 0.1))
        means.append(natural.mean())
    assert 0.04 <= np.mean(fractions) <= 0.16
    assert 0.4 <= np.mean(means) <= 0.6


def test_same_seed_same_scores_and_options():
    ref, inf = _window(2, n_adv=10)
    a = sample_scores(ref, inf, seed=3)
    assert np.array_equal(a, sample_scores(ref, inf, seed=3))
    assert not np.array_equal(a, sample_scores(ref, inf, seed=4))
    res = sample_scores_with_pvalues(
        ref, inf, seed=0, n_calibration=100, kernel="rbf", bandwidth=2.0, standardize=True
    )
    assert res.n_calibration == 100 and res.kernel == "rbf" and res.bandwidth == pytest.approx(2.0)
    assert np.min(res.p_values) >= 1 / 101


def test_large_reference_is_capped():
    ref, inf = _window(3, n_ref=5000, n_nat=50, d=4)
    res = sample_scores_with_pvalues(ref, inf, seed=0, max_fit=500)
    assert res.n_calibration == 1000 and res.n_fit == 500


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"n_calibration": 600},
            "n_calibration=600 leaves no reference rows to fit on; reference has 600",
        ),
        ({"n_calibration": 0}, "n_calibration must be an integer >= 1; got 0"),
        ({"kernel": "laplace"}, "kernel must be one of"),
    ],
)
def test_bad_options_raise(kwargs, match):
    ref, inf = _window(4)
    with pytest.raises(InputError, match=match):
        sample_scores(ref, inf, **kwargs)


def test_bad_inputs_raise():
    ref, inf = _window(5)
    with pytest.raises(InputError, match="inference needs at least 2 rows"):
        sample_scores(ref, inf[:1])
    with pytest.raises(InputError, match="reference needs at least 2 rows"):
        sample_scores(ref[:1], inf)
    with pytest.raises(InputError, match="same number of features; got 16 and 15"):
        sample_scores(ref, inf[:, :15])
    bad = inf.copy()
    bad[3, 2] = np.inf
    with pytest.raises(InputError, match="inference contains 1 NaN or infinite"):
        sample_scores(ref, bad)
