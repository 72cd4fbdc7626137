"""The window analysis on its own: arrays in, a typed analysis out, no storage, and every
recorded setting is one the statistics used."""

from __future__ import annotations

import numpy as np
import pytest

from ladis_core import monitoring
from ladis_core.errors import InputError
from ladis_core.monitoring.results import JobSettings
from ladis_core.monitoring.scores import WindowScores
from ladis_core.trials import TrialData

SETTINGS = JobSettings(n_samples=30, n_repeats=20, n_permutations=200, seed=3)


def _reference(rows: int = 120, dim: int = 16, seed: int = 0) -> TrialData:
    rng = np.random.default_rng(seed)
    return TrialData(
        uri="mem://reference",
        mode="EVAL",
        steps=np.arange(rows, dtype=np.int64),
        layers={"a": rng.normal(size=(rows, dim)).astype(np.float32)},
        predicted_class=rng.integers(0, 3, rows),
    )


def _window(rows: int = 60, dim: int = 16, shift: float = 0.0, seed: int = 1) -> monitoring.Window:
    rng = np.random.default_rng(seed)
    return monitoring.Window(
        steps=np.arange(100, 100 + rows, dtype=np.int64),
        layers={"a": (rng.normal(size=(rows, dim)) + shift).astype(np.float32)},
        classes=rng.integers(0, 3, rows),
    )


def test_analyse_window_needs_no_storage_and_returns_typed_results() -> None:
    result = monitoring.analyse_window(
        _reference(), _window(shift=1.0), layers=["a"], settings=SETTINGS
    )
    assert isinstance(result, monitoring.WindowAnalysis)
    assert result.detection_rate > 50 and result.baseline_detection_rate < 50
    assert len(result.layers["a"].p_values) == SETTINGS.n_repeats
    assert isinstance(result.scores, WindowScores) and result.scores.steps.tolist() == list(
        range(100, 160)
    )
    top_p = [s.p_value for s in result.top_samples]
    assert len(top_p) == 60 and top_p == sorted(top_p)  # most suspicious first
    assert result.combined_method == "single-layer"


def test_the_kernel_a_result_records_is_the_kernel_the_test_used() -> None:
    ref, window = _reference(), _window(shift=0.3)
    multi = monitoring.analyse_window(ref, window, layers=["a"], settings=SETTINGS)
    single = monitoring.analyse_window(
        ref, window, layers=["a"], settings=JobSettings(**{**SETTINGS.__dict__, "kernel": "rbf"})
    )
    # same rows, same seed, same permutations: only the kernel differs, so must the numbers
    assert multi.layers["a"].p_values != single.layers["a"].p_values
    assert not np.array_equal(multi.scores.score, single.scores.score)


def test_an_unknown_kernel_is_refused_before_any_work() -> None:
    with pytest.raises(InputError, match="kernel='laplace' is not one of multi_rbf, rbf"):
        monitoring.analyse_window(
            _reference(),
            _window(),
            layers=["a"],
            settings=JobSettings(**{**SETTINGS.__dict__, "kernel": "laplace"}),
        )


def test_a_window_smaller_than_n_is_not_analysed() -> None:
    with pytest.raises(InputError, match="the window has 10 rows; n_samples=30"):
        monitoring.analyse_window(_reference(), _window(rows=10), layers=["a"], settings=SETTINGS)


def test_window_scores_round_trip_through_their_document() -> None:
    scores = WindowScores(
        steps=np.array([4, 5], dtype=np.int64),
        predicted_class=np.array([1, 0], dtype=np.int64),
        score=np.array([2.5, np.inf]),
        p_value=np.array([0.003, 0.5]),
        score_method="witness-pvalue",
        layers={"a": {"score": np.array([2.5, 0.1]), "p_value": np.array([0.003, 0.5])}},
        job_id="2026-11-23T17-00-00Z",
    )
    document = scores.to_dict()
    assert document["score"] == [2.5, None]  # strict JSON: no inf
    back = WindowScores.from_dict(document, source="x")
    assert back.job_id == scores.job_id and back.steps.tolist() == [4, 5]
    assert back.layers["a"]["p_value"].tolist() == [0.003, 0.5]
    with pytest.raises(InputError, match="y: 1 scores for 2 steps"):
        WindowScores.from_dict({**document, "score": [1.0]}, source="y")


def test_the_window_test_decides_and_reports_the_share_and_the_rows() -> None:
    ref = _reference(rows=300)
    natural = monitoring.analyse_window(
        ref, _window(rows=120, seed=4), layers=["a"], settings=SETTINGS
    )
    attacked_window = _window(rows=120, seed=5)
    attacked_window.layers["a"][:36] += 1.5  # 30 % of the window moved
    attacked = monitoring.analyse_window(ref, attacked_window, layers=["a"], settings=SETTINGS)
    for analysis in (natural, attacked):
        evidence = analysis.window_test
        assert evidence is not None and 1 / 201 <= evidence.p_value <= 1
        assert evidence.reference_rows == 300 and evidence.window_rows == 120
        assert evidence.n_permutations == SETTINGS.n_permutations
        assert {c.predicted_class for c in evidence.classes} == {0, 1, 2}
        assert analysis.baseline is not None and analysis.baseline.splits == 5
        low, high = analysis.baseline.range
        assert low <= analysis.baseline_detection_rate <= high
    assert natural.window_test.p_value > 0.01 > attacked.window_test.p_value
    share = attacked.window_test.share
    assert share.low <= 0.3 <= share.high and share.estimate > 0.15
    assert natural.window_test.share.low == 0.0


def test_repeated_requests_are_counted_and_few_reference_rows_are_flagged() -> None:
    window = _window(rows=60)
    repeated = monitoring.Window(
        steps=np.arange(100, 180, dtype=np.int64),
        layers={"a": np.vstack([window.layers["a"], window.layers["a"][:20]])},
        classes=np.r_[window.classes, window.classes[:20]],
    )
    few = monitoring.analyse_window(_reference(rows=100), repeated, layers=["a"], settings=SETTINGS)
    assert few.window_test.duplicates == 20 and few.window_test.window_rows == 60
    # 100 reference rows for 3 classes: below the floor of 40 per class
    assert any("rests on 100 reference rows, fewer than 120" in w for w in few.warnings)
    enough = monitoring.analyse_window(
        _reference(rows=120), repeated, layers=["a"], settings=SETTINGS
    )
    assert not any("reference rows, fewer than" in w for w in enough.warnings)
