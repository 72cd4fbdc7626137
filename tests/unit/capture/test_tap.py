"""The capture's hooks: references where the model leaves a tensor alone, copies where
it changes one in place, and a refused step rather than a wrong one."""

from __future__ import annotations

import torch
from torch import nn

from ladis_core import capture, trials
from ladis_core.capture.plan import plan_capture
from ladis_core.capture.tap import LayerTap


class InPlaceAfter(nn.Module):
    """``norm``'s output is changed in place by the ReLU after it; ``late``'s output
    only from the third forward pass on (a data-dependent in-place path)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.norm = nn.BatchNorm2d(2)
        self.late = nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y = torch.relu_(self.norm(self.conv(x)))
        z = self.late(y * 1.0)
        if self.calls >= 3:
            z.mul_(2.0)
        return self.head(self.pool(z).flatten(1))


def _model() -> InPlaceAfter:
    torch.manual_seed(0)
    model = InPlaceAfter().eval()
    with torch.no_grad():
        model.norm.running_mean.fill_(0.5)  # so that the ReLU changes values
    return model


def test_tensors_changed_in_place_are_learnt_and_copied():
    model = _model()
    plan = plan_capture(model, layers=["norm"], input_shape=(1, 4, 4))
    tap = LayerTap(model, plan)
    images = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    before_relu = model.norm(model.conv(images)).detach().clone()
    model.calls = 0
    for _ in range(2):
        with tap.collect() as kept, torch.no_grad():
            model(images)
        assert kept["norm_output_0"].cloned  # the first pass copies all; then it is learnt
        tensors = tap.settle(kept)
        assert tensors is not None
        assert torch.equal(tensors["norm_output_0"].host, before_relu)
    with tap.collect() as kept, torch.no_grad():
        model(images)
    assert not kept["pool_output_0"].cloned  # left alone by the model: kept by reference
    tap.remove()


def test_a_step_whose_tensor_changed_unexpectedly_is_dropped_and_counted(tmp_path):
    model = _model()
    images = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with capture.ServingCapture(
        model, str(tmp_path / "t"), layers=["late"], input_shape=(1, 4, 4), upload_interval_s=0
    ) as cap:
        model.calls = 0
        steps = [cap.record(images)[1] for _ in range(4)]
        cap.wait_until_staged()
        health = cap.health()
    # pass 1 copies everything; pass 2 keeps `late` by reference and it stays intact;
    # pass 3 changes it in place: refused (and `late` is copied from then on)
    assert steps == [0, 1, 2, 3]
    assert (health["steps_recorded"], health["steps_written"], health["steps_dropped"]) == (4, 3, 1)
    assert trials.load_trial(str(tmp_path / "t"), mode="PREDICT").steps.tolist() == [0, 1, 3]
