"""Fixtures of the integration tests that several files share."""

from __future__ import annotations

import pytest

from tests.support.fleet_world import FleetTrials, build_trials


@pytest.fixture(scope="session")
def fleet_trials(tmp_path_factory: pytest.TempPathFactory) -> FleetTrials:
    """The fleet tests' trials: a reference and the windows C C S S C C C (clean, shifted),
    captured once by the project's capture (see tests/support/fleet_world.py)."""
    return build_trials(tmp_path_factory.mktemp("fleet-trials"))
