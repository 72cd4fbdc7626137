"""detection_rate and baseline_detection_rate: protocol, results, class matching."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from ladis_core import DetectionRateResult, baseline_detection_rate, detection_rate, mmd_test
from ladis_core.stats import _engine

FAST = {"n_samples": 30, "n_repeats": 20, "n_permutations": 200}


def _data(seed: int, rows_ref=300, rows_inf=200, d=16, shift=0.0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(rows_ref, d)).astype(np.float32)
    inf = (rng.normal(size=(rows_inf, d)) + shift).astype(np.float32)
    return ref, inf


def test_result_fields():
    ref, inf = _data(0, shift=0.3)
    res = detection_rate(ref, inf, seed=1, **FAST)
    assert isinstance(res, DetectionRateResult)
    assert res.p_values.shape == res.statistics.shape == res.bandwidths.shape == (20,)
    assert (res.n_samples, res.n_repeats, res.n_permutations, res.alpha) == (30, 20, 200, 0.05)
    assert res.kernel == "multi_rbf" and res.statistic_name == "MMD^2_u"
    assert not res.class_matched and not res.baseline and res.warnings == []
    assert np.all(res.p_values >= 1 / 201) and np.all(res.p_values <= 1)
    assert res.rate == pytest.approx(100 * np.mean(res.p_values < 0.05))
    assert res.n_detected == int(np.sum(res.p_values < 0.05))
    assert res.median_p_value == pytest.approx(np.median(res.p_values))
    low, high = res.confidence_interval()
    assert 0 <= low <= res.rate <= high <= 100
    assert json.loads(json.dumps(res.to_dict()))["rate"] == res.rate
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.rate = 0.0  # type: ignore[misc]


def test_statistic_and_bandwidth_match_mmd_test_on_the_whole_sample():
    ref, inf = _data(1, rows_ref=40, rows_inf=40, shift=0.2)
    res = detection_rate(ref, inf, n_samples=40, n_repeats=1, n_permutations=50, seed=0)
    single = mmd_test(ref, inf, n_permutations=50, seed=0)
    assert res.statistics[0] == pytest.approx(single.statistic, rel=1e-4, abs=1e-7)
    assert res.bandwidths[0] == pytest.approx(single.bandwidth, rel=1e-5)


def test_pair_swap_power_matches_the_full_permutation_test():
    """Over 120 shifted datasets, both tests reject about equally often."""
    rng = np.random.default_rng(2)
    swap = full = 0
    for i in range(120):
        x = rng.normal(size=(30, 5)).astype(np.float32)
        y = (rng.normal(size=(30, 5)) + 0.35).astype(np.float32)
        swap += detection_rate(
            x, y, n_samples=30, n_repeats=1, n_permutations=200, seed=i
        ).n_detected
        full += mmd_test(x, y, n_permutations=200, seed=i).p_value < 0.05
    assert 25 <= full <= 100
    assert abs(swap - full) <= 4 * np.sqrt(120 * 0.25)


def test_same_seed_same_numbers_and_no_global_rng():
    ref, inf = _data(3, shift=0.2)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a, b = detection_rate(ref, inf, seed=5, **FAST), detection_rate(ref, inf, seed=5, **FAST)
    assert np.array_equal(a.p_values, b.p_values) and np.array_equal(a.statistics, b.statistics)
    assert not np.array_equal(a.p_values, detection_rate(ref, inf, seed=6, **FAST).p_values)
    detection_rate(ref, inf, seed=None, **FAST)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_tensor_and_float64_inputs_give_the_same_numbers():
    ref, inf = _data(4, shift=0.2)
    a = detection_rate(ref, inf, seed=0, **FAST)
    b = detection_rate(
        torch.from_numpy(ref), torch.from_numpy(inf.astype(np.float64)), seed=0, **FAST
    )
    assert np.array_equal(a.p_values, b.p_values)


@pytest.mark.parametrize("patch", ["direct", "small_chunks", "no_outer"])
def test_engine_code_paths_agree(monkeypatch, patch):
    ref, inf = _data(5, shift=0.15)
    expected = detection_rate(ref, inf, seed=0, **FAST)
    if patch == "direct":
        monkeypatch.setattr(_engine, "_GRAM_MAX_BYTES", 0)
    elif patch == "small_chunks":
        monkeypatch.setattr(_engine, "_CHUNK_BYTES", 1)
    else:
        monkeypatch.setattr(_engine, "_OUTER_MIN_TESTS", 10**9)
    got = detection_rate(ref, inf, seed=0, **FAST)
    assert np.allclose(got.statistics, expected.statistics, rtol=1e-4, atol=1e-7)
    assert np.max(np.abs(got.p_values - expected.p_values)) <= 2 / 201


def test_progress_is_reported(monkeypatch):
    monkeypatch.setattr(_engine, "_CHUNK_BYTES", 1)  # one repetition per chunk
    seen = []
    ref, inf = _data(6)
    detection_rate(
        ref, inf, seed=0, progress=seen.append, n_samples=20, n_repeats=5, n_permutations=50
    )
    assert [p.done for p in seen] == [0, 1, 2, 3, 4, 5]
    assert all(p.total == 5 and p.stage == "detection rate" for p in seen)


def test_too_few_permutations_for_alpha_is_warned():
    ref, inf = _data(7, shift=2.0)
    res = detection_rate(ref, inf, n_samples=20, n_repeats=3, n_permutations=10, seed=0)
    assert res.rate == 0.0
    assert any("n_permutations=10 is too small" in w for w in res.warnings)


# ------------------------------------------------------------------ class-matched sampling


def _classed(seed, n_ref, n_inf, inf_mix, d=8, shift=0.0):
    """Five well-separated classes; the inference window has class mix ``inf_mix``."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(5, d)) * 4
    ref_cls = rng.integers(0, 5, n_ref)
    inf_cls = rng.choice(5, n_inf, p=inf_mix)
    ref = (centres[ref_cls] + rng.normal(size=(n_ref, d))).astype(np.float32)
    inf = (centres[inf_cls] + rng.normal(size=(n_inf, d)) + shift).astype(np.float32)
    return ref, ref_cls, inf, inf_cls


SKEWED = [0.6, 0.3, 0.1, 0.0, 0.0]


def test_class_matching_ignores_a_benign_class_mix_change():
    ref, ref_cls, inf, inf_cls = _classed(10, 5000, 3000, SKEWED)
    opts = {"n_samples": 50, "n_repeats": 100, "n_permutations": 200, "seed": 0}
    unmatched = detection_rate(ref, inf, **opts)
    matched = detection_rate(ref, inf, reference_classes=ref_cls, inference_classes=inf_cls, **opts)
    assert unmatched.rate >= 90.0
    assert matched.class_matched and matched.warnings == []
    assert matched.n_detected <= 14  # binomial(100, 0.05) upper 0.1 % bound


def test_class_matching_still_detects_a_real_shift():
    ref, ref_cls, inf, inf_cls = _classed(11, 2000, 1000, SKEWED, shift=0.8)
    res = detection_rate(
        ref, inf, reference_classes=ref_cls, inference_classes=inf_cls, seed=0, **FAST
    )
    assert res.rate >= 95.0


def test_class_matching_with_string_labels_and_tensors():
    ref, ref_cls, inf, inf_cls = _classed(12, 600, 300, SKEWED)
    names = np.array(["cat", "dog", "emu", "fox", "gnu"])
    a = detection_rate(
        ref, inf, reference_classes=ref_cls, inference_classes=inf_cls, seed=0, **FAST
    )
    b = detection_rate(
        ref, inf, reference_classes=names[ref_cls], inference_classes=names[inf_cls], seed=0, **FAST
    )
    c = detection_rate(
        ref,
        inf,
        reference_classes=torch.from_numpy(ref_cls),
        inference_classes=torch.from_numpy(inf_cls),
        seed=0,
        **FAST,
    )
    assert np.array_equal(a.p_values, b.p_values) and np.array_equal(a.p_values, c.p_values)


def test_class_shortfall_falls_back_and_warns():
    ref, ref_cls, inf, inf_cls = _classed(13, 600, 300, [0.2, 0.2, 0.2, 0.2, 0.2])
    keep = (ref_cls != 4) | (np.cumsum(ref_cls == 4) <= 3)  # only 3 reference rows of class 4
    ref, ref_cls = ref[keep], ref_cls[keep]
    n4 = int(np.sum(ref_cls == 4))
    assert n4 == 3
    res = detection_rate(
        ref, inf, reference_classes=ref_cls, inference_classes=inf_cls, seed=0, **FAST
    )
    assert len(res.warnings) == 1
    warning = res.warnings[0]
    assert (
        "class 4" in warning and f"reference has {n4}" in warning and "of 20 repetitions" in warning
    )


def test_class_absent_from_the_reference_falls_back():
    ref, ref_cls, inf, inf_cls = _classed(14, 400, 200, SKEWED)
    inf_cls = inf_cls.copy()
    inf_cls[:40] = 9  # a class the reference never predicted
    res = detection_rate(
        ref, inf, reference_classes=ref_cls, inference_classes=inf_cls, seed=0, **FAST
    )
    assert any("class 9" in w and "reference has 0" in w for w in res.warnings)
    assert res.p_values.shape == (20,)


# ------------------------------------------------------------------ baseline


def test_baseline_uses_two_disjoint_halves():
    ref, _ = _data(20, rows_ref=61)
    res = baseline_detection_rate(ref, n_samples=30, n_repeats=5, n_permutations=50, seed=0)
    assert res.baseline and res.p_values.shape == (5,)
    assert (
        baseline_detection_rate(
            ref, n_samples=30, n_repeats=5, n_permutations=50, seed=0
        ).p_values.tolist()
        == res.p_values.tolist()
    )


def test_baseline_with_classes_and_standardisation():
    ref, ref_cls, _, _ = _classed(21, 800, 10, SKEWED)
    res = baseline_detection_rate(ref, reference_classes=ref_cls, standardize=True, seed=0, **FAST)
    assert res.class_matched and res.baseline
    assert res.rate <= 30.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_protocol_and_scores_match_cpu():
    from ladis_core import multi_layer_detection_rate, sample_scores

    ref, inf = _data(30, shift=0.2)
    cpu = detection_rate(ref, inf, seed=0, **FAST)
    gpu = detection_rate(ref, inf, seed=0, device="cuda", **FAST)
    assert np.allclose(gpu.statistics, cpu.statistics, rtol=1e-3, atol=1e-6)
    assert np.mean(np.abs(gpu.p_values - cpu.p_values)) <= 0.01
    multi = multi_layer_detection_rate({"a": ref}, {"a": inf}, seed=0, device="cuda", **FAST)
    assert multi.layers["a"].p_values.shape == (20,)
    on_gpu = detection_rate(
        torch.from_numpy(ref).cuda(), torch.from_numpy(inf).cuda(), seed=0, **FAST
    )
    assert np.allclose(on_gpu.statistics, cpu.statistics, rtol=1e-3, atol=1e-6)
    scores_cpu = sample_scores(ref, inf, seed=0)
    scores_gpu = sample_scores(ref, inf, seed=0, device="cuda")
    assert np.mean(np.abs(scores_cpu - scores_gpu)) <= 0.05
