"""One label for an attack's strength: the demo's story, the dashboard and reports agree."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.components.format import attack_label
from ladis_core.demo import TrafficWindow
from ladis_core.model.labels import epsilon_label


@pytest.mark.parametrize(
    ("epsilon", "label"),
    [
        (8 / 255, "8/255"),
        (16 / 255, "16/255"),
        (8 / 255 + 2e-6, "8/255"),  # a value stored with a rounding error
        (0.0314, "0.0314"),
        (0.3, "0.3"),
    ],
)
def test_epsilon_label(epsilon: float, label: str) -> None:
    assert epsilon_label(epsilon) == label


def test_the_demo_and_the_dashboard_name_the_same_attack_alike() -> None:
    epsilon = 8 / 255 + 2e-6
    story = TrafficWindow(attack="pgd", epsilon=epsilon, share=1.0).describe()
    recorded = attack_label(SimpleNamespace(provenance={"attack": "pgd", "epsilon": epsilon}))
    assert story == "PGD ε=8/255" and recorded == "pgd ε=8/255"
