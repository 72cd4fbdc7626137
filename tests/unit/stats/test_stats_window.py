"""window_test: agreement with a brute-force loop, seeds, repeats, classes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from ladis_core import window_test
from ladis_core.errors import InputError

KERNELS = (("gaussian", 1.0), ("laplace", 1.0))
EIG_TOL = 1e-5  # the Nystroem map keeps eigenvalues above this share of the largest


# ------------------------------------------------------------------ brute-force reference


def _sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def _nystroem_gram(z: np.ndarray, landmarks: np.ndarray, family: str, width: float) -> np.ndarray:
    """K_NL pinv(K_LL) K_LN of the pooled rows (float64), eigenvalues truncated as LADIS does."""
    d2 = _sq(z, landmarks)
    k_nl = np.exp(-d2 / (2 * width**2)) if family == "gaussian" else np.exp(-np.sqrt(d2) / width)
    d2_ll = _sq(landmarks, landmarks)
    k_ll = (
        np.exp(-d2_ll / (2 * width**2)) if family == "gaussian" else np.exp(-np.sqrt(d2_ll) / width)
    )
    values, vectors = np.linalg.eigh(k_ll)
    keep = values > EIG_TOL * values[-1]
    proj = vectors[:, keep] / np.sqrt(values[keep])
    phi = k_nl @ proj
    return phi @ phi.T


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks in (0, 1]."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        ranks[values == v] = ranks[values == v].mean()
    return ranks / len(values)


def brute_force_statistics(x, y, x_classes, y_classes, record, k, kernels):
    """Every statistic of every labelling, recomputed from the swapped data sets (float64):
    the class-reweighted MMD of each kernel's Nystroem map on the fit rows, and the sum over
    the window of the ranks of the class-wise k-nearest-fit-row distance."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    fit = record.fit_rows
    mu, sd = x[fit].mean(0), x[fit].std(0)
    sd = np.where(sd > 0, sd, 1.0)
    landmarks = (x[fit] - mu) / sd
    med = np.sqrt(
        np.sort(_sq(landmarks, landmarks)[np.triu_indices(len(fit), 1)])[
            (len(fit) * (len(fit) - 1) // 2 - 1) // 2
        ]
    )
    paired_ref = record.pairs[:, 0]
    out = []
    for swap in record.swaps:
        xb, yb = x.copy(), y.copy()
        r, i = record.pairs[swap, 0], record.pairs[swap, 1]
        xb[r], yb[i] = y[i], x[r]
        z = (np.vstack([xb, yb]) - mu) / sd
        m = len(yb)
        weights = np.full(len(z), 1.0 / m)
        for c in np.unique(y_classes):
            in_ref = x_classes == c
            weights[: len(xb)][in_ref] = -(np.sum(y_classes == c) / m) / in_ref.sum()
        weights[: len(xb)][~np.isin(x_classes, y_classes)] = 0.0
        stats = [
            weights @ _nystroem_gram(z, landmarks, family, c * med) @ weights
            for family, c in kernels
        ]
        movable = np.vstack([z[paired_ref], z[len(xb) :]])
        movable_classes = np.r_[x_classes[paired_ref], y_classes]
        d2 = _sq(movable, landmarks)
        d2[movable_classes[:, None] != x_classes[fit][None, :]] = np.inf
        nearest = np.sort(d2, axis=1)[:, :k]
        scores = np.where(np.isfinite(nearest), nearest, 0).sum(1) / np.isfinite(nearest).sum(1)
        stats.append(_ranks(scores)[len(paired_ref) :].sum())  # window rows come last
        out.append(stats)
    return np.array(out).T  # (S, B + 1)


def decision_p_value(stats: np.ndarray, families: list[list[int]]) -> float:
    """Standardise, max within each family, rank p-values, min over families, p-value."""
    z = (stats - stats.mean(1, keepdims=True)) / stats.std(1, keepdims=True)
    fam = np.stack([z[f].max(0) for f in families])
    rank_p = (fam[:, None, :] >= fam[:, :, None]).mean(axis=2)  # (F, B + 1)
    smallest = rank_p.min(0)
    return float(np.mean(smallest <= smallest[0]))


def _data(seed: int, n: int = 24, m: int = 12, d: int = 3, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.normal(size=(m, d)) + shift).astype(np.float32)
    return x, y


@pytest.mark.parametrize("classes", [False, True])
@pytest.mark.parametrize("shift", [0.0, 0.8])
def test_every_statistic_and_the_decision_match_a_brute_force_loop(classes, shift):
    x, y = _data(3, shift=shift)
    xc = np.arange(len(x)) % 2 if classes else np.zeros(len(x), int)
    yc = (np.arange(len(y)) % 3 == 0).astype(int) if classes else np.zeros(len(y), int)
    k = 3
    res = window_test(
        x,
        y,
        reference_classes=xc if classes else None,
        inference_classes=yc if classes else None,
        kernels=KERNELS,
        neighbours=k,
        landmarks=100,
        max_rank=100,
        n_permutations=60,
        seed=5,
        keep_permutations=True,
    )
    record = res.permutations
    assert record is not None and record.swaps.shape == (61, len(record.pairs))
    assert not record.swaps[0].any()
    assert record.labels == ["features/gaussian×1", "features/laplace×1", "features/neighbours"]
    # pairs share a class and are distinct rows; fit rows are never paired
    assert np.all(xc[record.pairs[:, 0]] == yc[record.pairs[:, 1]])
    assert len(set(record.pairs[:, 0])) == len(record.pairs)
    assert not set(record.pairs[:, 0]) & set(record.fit_rows)

    brute = brute_force_statistics(x, y, xc, yc, record, k, KERNELS)
    np.testing.assert_allclose(record.statistics, brute, rtol=2e-3, atol=1e-7)
    for label, row in zip(["gaussian×1", "laplace×1", "neighbours"], brute, strict=True):
        expected = np.mean(row >= row[0] * (1 - 1e-6))
        assert res.kernels["features"][label] == pytest.approx(expected, abs=1.5 / 61)
    assert res.p_value == pytest.approx(decision_p_value(brute, [[2], [0, 1]]), abs=1.5 / 61)
    assert 1 / 61 <= res.p_value <= 1.0


def test_same_seed_same_numbers_and_no_global_rng():
    x, y = _data(1, n=80, m=40, d=6)
    np.random.seed(0)
    a = window_test(x, y, seed=11, n_permutations=200)
    state = np.random.get_state()[1].copy()
    b = window_test(x, y, seed=11, n_permutations=200)
    assert np.array_equal(np.random.get_state()[1], state)
    assert (a.p_value, a.layers, a.kernels, a.statistic) == (
        b.p_value,
        b.layers,
        b.kernels,
        b.statistic,
    )
    assert a.adversarial_share == b.adversarial_share
    np.testing.assert_array_equal(a.sample_p_values, b.sample_p_values)
    c = window_test(x, y, seed=12, n_permutations=200)
    assert (c.statistic, c.p_value) != (a.statistic, a.p_value)


def test_dict_of_layers_gives_per_layer_p_values_and_a_decision_at_alpha():
    rng = np.random.default_rng(2)
    ref = {"a": rng.normal(size=(200, 8)), "b": rng.normal(size=(200, 4))}
    inf = {"a": rng.normal(size=(100, 8)), "b": rng.normal(size=(100, 4))}
    inf["b"][:40] += 1.5  # only layer b sees the shift
    res = window_test(ref, inf, seed=0, alpha=0.01)
    assert set(res.layers) == {"a", "b"} and set(res.kernels) == {"a", "b"}
    assert res.layers["b"] < 0.01 < res.layers["a"]
    assert res.reject and res.p_value < 0.01
    assert res.neighbours_p_value is not None
    assert res.n_inference == 100 and res.sample_p_values.shape == (100,)
    assert 0.2 <= res.adversarial_share.estimate <= 0.6
    assert res.adversarial_share.low <= 0.4 <= res.adversarial_share.high


def test_repeated_inputs_are_tested_once_and_counted():
    x, y = _data(4, n=120, m=60, d=5)
    repeated = np.vstack([y, y[:20], y[:5]])
    res = window_test(x, repeated, seed=0)
    assert res.duplicates == 25 and res.n_inference == 60
    assert any("repeat an earlier input" in w for w in res.warnings)
    # a repeat carries its input's p-value
    np.testing.assert_array_equal(res.sample_p_values[60:80], res.sample_p_values[:20])
    # ids decide what counts as the same input
    ids = np.arange(len(repeated))
    assert window_test(x, repeated, seed=0, inference_ids=ids).duplicates == 0


def test_window_rows_of_a_class_the_reference_lacks_are_left_out_with_a_warning():
    x, y = _data(5, n=60, m=30, d=4)
    xc = np.arange(60) % 2
    yc = np.r_[np.zeros(20, int), np.full(10, 7)]
    res = window_test(x, y, reference_classes=xc, inference_classes=yc, seed=0)
    assert res.n_inference == 20
    assert np.isnan(res.sample_p_values[20:]).all()
    assert any("'7'" in w or "7" in w and "left out" in w for w in res.warnings)
    labels = [c.label for c in res.classes]
    assert labels == [0, 7]
    assert res.classes[1].share is None and res.classes[1].reference_rows == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reference": np.zeros((5, 3))}, "at least 10"),
        ({"inference": np.ones((200, 3))}, "at least 10"),  # all repeats of one input
        ({"inference": np.zeros((30, 4))}, "same number of features"),
        ({"inference": {"other": np.zeros((30, 3))}}, "same layers"),
        ({"inference": np.full((30, 3), np.nan)}, "NaN"),
        ({"alpha": 1.5}, "alpha"),
        ({"n_permutations": 0}, "n_permutations"),
        ({"kernels": [("cosine", 1.0)]}, "kernels"),
        ({"kernels": [("gaussian", -1.0)]}, "kernels"),
        ({"reference_classes": np.zeros(3)}, "class"),
        ({"inference_ids": np.zeros(3)}, "inference_ids"),
        ({"statistics": ("mmd", "t-test")}, "statistics"),
    ],
)
def test_error_contract(kwargs, match):
    rng = np.random.default_rng(0)
    args = {"reference": rng.normal(size=(60, 3)), "inference": rng.normal(size=(30, 3))}
    args.update(kwargs)
    if "reference_classes" in kwargs:
        args["inference_classes"] = np.zeros(30)
    with pytest.raises(InputError, match=match):
        window_test(args.pop("reference"), args.pop("inference"), **args)


def test_layers_with_different_rows_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="same rows"):
        window_test(
            {"a": rng.normal(size=(60, 3)), "b": rng.normal(size=(59, 3))},
            {
                "a": rng.normal(size=(30, 3)),
                "b": rng.normal(size=(30, 3)),
            },
        )


def test_result_serialises_to_plain_json_values():
    import json

    x, y = _data(6, n=60, m=30)
    res = window_test(
        x, y, reference_classes=np.arange(60) % 3, inference_classes=np.arange(30) % 3, seed=0
    )
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert doc["p_value"] == res.p_value and doc["class_conditional"] is True
    assert {c["label"] for c in doc["classes"]} == {0, 1, 2}
    assert doc["adversarial_share"]["method"] == "storey"
