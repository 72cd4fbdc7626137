"""Your own model behind its preprocessing: module names stay the model's, inputs are
normalised, and moving or casting reaches the model's own parameters (a ViT's class
token is not in any child module)."""

from __future__ import annotations

import torch
from torchvision import models

from ladis_core.capture.plan import plan_capture
from ladis_core.model.imported import Preprocessed, with_preprocessing
from ladis_core.trials import Preprocessing


def _vit() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return models.vit_b_16(num_classes=4, image_size=32).eval()


def test_preprocessed_model_keeps_its_names_and_normalises():
    vit = _vit()
    wrapped = with_preprocessing(vit, Preprocessing(mean=(0.5,), std=(0.25,)))
    assert isinstance(wrapped, Preprocessed) and wrapped._get_name() == "VisionTransformer"
    assert [n for n, _ in wrapped.named_modules()][1:5] == [n for n, _ in vit.named_modules()][1:5]
    x = torch.rand((2, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), vit((x - 0.5) / 0.25))
    plan = plan_capture(wrapped, input_shape=(3, 32, 32))
    assert plan.penultimate.tensor == "heads_input_0"
    assert plan.tensor_names[0] == "VisionTransformer_input_0"
    assert with_preprocessing(vit, Preprocessing()) is vit  # nothing to do: the model itself


def test_moving_the_wrapper_moves_the_models_own_parameters():
    vit = _vit()
    wrapped = with_preprocessing(vit, Preprocessing(mean=(0.5,), std=(0.25,)))
    wrapped.to(torch.float64)
    assert vit.class_token.dtype == torch.float64  # a parameter of the model, not a child
    assert wrapped.ladis_mean.dtype == torch.float64
    assert vit.encoder.pos_embedding.dtype == torch.float64
    wrapped.train()
    assert vit.training and vit.encoder.training
    wrapped.eval()
    assert not vit.training and not vit.heads.training
