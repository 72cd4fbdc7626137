"""Cost caps of on-demand tests and one test at a time per user."""

from __future__ import annotations

import threading

import pytest

from ladis_core.errors import BusyError, CostLimitError, InputError, SourceNotAllowedError
from ladis_core.monitoring import ondemand
from ladis_core.monitoring.limits import CostCaps, RunGate
from ladis_core.monitoring.results import JobSettings


def _check(
    caps: CostCaps, *, layers: int = 1, after: int | None = 0, until: int | None = 300, **settings
):
    caps.check(JobSettings(**settings), after_step=after, until_step=until, layers=layers)


def test_within_the_caps_passes() -> None:
    caps = CostCaps()
    _check(
        caps,
        n_samples=caps.max_n,
        n_repeats=caps.max_repeats,
        n_permutations=caps.max_permutations,
        layers=caps.max_layers,
        after=10,
        until=10 + caps.max_steps,
    )


@pytest.mark.parametrize(
    ("settings", "what", "setting"),
    [
        ({"n_samples": 201}, "n (rows per sample) is 201", "LADIS_MAX_N"),
        ({"n_repeats": 1000}, "R (repetitions) is 1,000", "LADIS_MAX_REPEATS"),
        ({"n_permutations": 100_000}, "permutations is 100,000", "LADIS_MAX_PERMUTATIONS"),
        ({"layers": 5}, "layers is 5", "LADIS_MAX_LAYERS"),
        ({"after": 0, "until": 2001}, "the window (steps) is 2,001", "LADIS_MAX_STEPS"),
        ({"after": None}, "a first and a last step", "LADIS_MAX_STEPS"),
        ({"until": None}, "a first and a last step", "LADIS_MAX_STEPS"),
    ],
)
def test_each_cap_is_named_with_its_setting(settings: dict, what: str, setting: str) -> None:
    with pytest.raises(CostLimitError) as caught:
        _check(CostCaps(), **settings)
    assert what in str(caught.value) and setting in str(caught.value)
    assert isinstance(caught.value, InputError) and caught.value.kind == "cost-limit"


def test_caps_are_configurable() -> None:
    caps = CostCaps.from_environment({"LADIS_MAX_N": "500", "LADIS_MAX_STEPS": " 10000 "})
    assert (caps.max_n, caps.max_steps, caps.max_repeats) == (500, 10_000, CostCaps().max_repeats)
    for bad in ("0", "-3", "lots", "1.5"):
        with pytest.raises(CostLimitError, match="LADIS_MAX_REPEATS"):
            CostCaps.from_environment({"LADIS_MAX_REPEATS": bad})


def test_run_test_refuses_before_reading_anything(tmp_path) -> None:
    from ladis_core.access import SourcePolicy

    missing = str(tmp_path / "no-such-trial")
    # a cap: refused before the (missing) trials are opened
    with pytest.raises(CostLimitError, match="LADIS_MAX_N"):
        ondemand.run_test(
            reference=missing,
            inference=missing,
            after_step=0,
            until_step=10,
            settings=JobSettings(n_samples=10_000),
            caps=CostCaps(),
        )
    # a trial outside the allowed sources: refused, naming the allow-list
    with pytest.raises(SourceNotAllowedError) as caught:
        ondemand.run_test(
            reference=missing,
            inference="s3://elsewhere/trial",
            after_step=0,
            until_step=10,
            sources=SourcePolicy.of([str(tmp_path)]),
        )
    assert str(tmp_path) in str(caught.value)


def test_one_run_at_a_time_per_user() -> None:
    gate = RunGate()
    inside, release = threading.Event(), threading.Event()

    def long_test() -> None:
        with gate.hold("alice"):
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=long_test)
    worker.start()
    assert inside.wait(10)
    assert gate.running("alice")
    with pytest.raises(BusyError, match="one at a time"), gate.hold("alice"):
        pass
    with gate.hold("bob"):  # another user is not held up
        assert gate.running("bob")
    release.set()
    worker.join(10)
    assert not gate.running("alice")
    with gate.hold("alice"):  # free again, also after an error inside
        pass
    with pytest.raises(RuntimeError), gate.hold("alice"):
        raise RuntimeError("the test failed")
    assert not gate.running("alice")
