"""Adversarial examples: PGD (L∞, random start) and FGSM, batched, in pixel space.

The model takes images in [0, 1] (normalisation is inside it), so the ε-ball and the
clamp are in the same units as the image: ε = 8/255 means at most 8 grey levels of an
8-bit image per pixel.

- FGSM (Goodfellow et al., 2015): ``x' = clip(x + ε · sign(∇ₓ L(f(x), y)), 0, 1)``.
- PGD (Madry et al., 2018), untargeted: start at a uniform random point of the ε-ball
  (or at ``x``), then ``steps`` times ``x' ← clip(Π_ε(x' + α · sign(∇ₓ' L)), 0, 1)``, with
  ``Π_ε`` the projection onto ``[x − ε, x + ε]`` and L the cross-entropy.

The random start is drawn from an explicit ``torch.Generator`` (on the CPU, so CPU and
CUDA runs with the same seed start from the same point). The implementation is checked
against the Adversarial Robustness Toolbox in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ladis_core.errors import check
from ladis_core.progress import ProgressCallback, report

ATTACKS = ("pgd", "fgsm")


@dataclass(frozen=True, eq=False)
class AttackResult:
    """Adversarial images and how well the attack did.

    ``images``: float32 ndarray (N, C, H, W) in [0, 1], within ε of the originals (L∞).
    ``predictions``: int64 (N,), the model's class for every adversarial image.
    ``success``: bool (N,), the prediction differs from the true label.
    ``success_rate``: percent of the originally correctly classified images whose
    adversarial version is misclassified (the usual definition; images the model already
    got wrong are no success of the attack). ``adversarial_accuracy``: percent of all
    adversarial images still classified correctly.
    """

    attack: str
    epsilon: float
    steps: int
    step_size: float
    images: np.ndarray
    predictions: np.ndarray
    success: np.ndarray
    clean_accuracy: float
    adversarial_accuracy: float
    success_rate: float
    seed: int | None = None

    def __len__(self) -> int:
        return len(self.images)

    def summary(self) -> dict[str, float | int | str | None]:
        """The figures without the arrays (for JSON)."""
        return {
            "attack": self.attack,
            "epsilon": self.epsilon,
            "steps": self.steps,
            "step_size": self.step_size,
            "images": len(self.images),
            "clean_accuracy": round(self.clean_accuracy, 3),
            "adversarial_accuracy": round(self.adversarial_accuracy, 3),
            "success_rate": round(self.success_rate, 3),
            "seed": self.seed,
        }


def _input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ₓ of the summed cross-entropy (sum, so one image's gradient ignores the batch)."""
    x = x.detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm_batch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilon: float
) -> torch.Tensor:
    """FGSM on one batch: ``x`` (B, C, H, W) in [0, 1], ``y`` (B,) → adversarial (B, C, H, W)."""
    grad = _input_gradient(model, x, y)
    return (x + epsilon * grad.sign()).clamp(0.0, 1.0).detach()


def pgd_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    step_size: float,
    steps: int,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """PGD L∞ on one batch. ``start``: the random offset (B, C, H, W) in [−ε, ε], or
    ``None`` to start at ``x``. Returns adversarial images (B, C, H, W) in [0, 1]."""
    lower, upper = (x - epsilon).clamp(min=0.0), (x + epsilon).clamp(max=1.0)
    adv = x.clone() if start is None else (x + start).clamp(0.0, 1.0)
    for _ in range(steps):
        grad = _input_gradient(model, adv, y)
        adv = adv.detach() + step_size * grad.sign()
        # projection onto the ε-ball and the image box in one step: both are boxes
        adv = torch.max(torch.min(adv, upper), lower)
    return adv.detach()


def _check_inputs(images: np.ndarray, labels: np.ndarray, epsilon: float) -> None:
    check(images.ndim == 4, f"images must have shape (N, C, H, W), got {images.shape}")
    check(len(images) == len(labels), f"{len(images)} images but {len(labels)} labels")
    check(
        0.0 <= epsilon <= 1.0,
        f"epsilon={epsilon} must be in [0, 1] (pixel units; 8/255 = {8 / 255:.4f})",
    )
    check(len(images) > 0, "no images to attack")
    check(bool(np.isfinite(images).all()), "images contain NaN or infinite values")


def attack(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    method: str = "pgd",
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> AttackResult:
    """Attack ``images`` (float32 (N, C, H, W) in [0, 1]) with true ``labels`` (int (N,)).

    ``method``: ``"pgd"`` or ``"fgsm"`` (FGSM ignores ``steps``, ``step_size`` and
    ``random_start``). ``step_size`` defaults to 2.5 ε / steps (Madry et al.). The
    random start of batch k is drawn from ``torch.Generator().manual_seed(seed)`` in
    order, so results do not depend on ``device``; they depend on ``batch_size`` only
    through floating-point summation order. The model is used in eval mode and its
    parameters get no gradients.
    """
    check(method in ATTACKS, f"method={method!r} is not one of {ATTACKS}")
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    _check_inputs(images, labels, epsilon)
    check(steps >= 1, f"steps={steps} must be at least 1")
    check(batch_size >= 1, f"batch_size={batch_size} must be at least 1")
    if method == "fgsm":
        steps, step_size, random_start = 1, epsilon, False
    alpha = float(step_size) if step_size is not None else 2.5 * epsilon / steps
    check(alpha >= 0, f"step_size={step_size} must not be negative")

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # only the input needs a gradient
    generator = torch.Generator().manual_seed(seed)
    adversarial = np.empty_like(images)
    predictions = np.empty(len(images), dtype=np.int64)
    clean_predictions = np.empty(len(images), dtype=np.int64)
    stage = f"{method} ε={epsilon:.4g}"
    report(progress, stage, 0, len(images))
    try:
        for begin in range(0, len(images), batch_size):
            end = min(begin + batch_size, len(images))
            x = torch.from_numpy(images[begin:end]).to(dev)
            y = torch.from_numpy(labels[begin:end]).to(dev)
            start = None
            if random_start and method == "pgd":
                start = (torch.rand(x.shape, generator=generator) * 2.0 - 1.0).mul_(epsilon).to(dev)
            with torch.no_grad():
                clean_predictions[begin:end] = model(x).argmax(dim=1).cpu().numpy()
            if method == "fgsm":
                adv = fgsm_batch(model, x, y, epsilon=epsilon)
            else:
                adv = pgd_batch(
                    model, x, y, epsilon=epsilon, step_size=alpha, steps=steps, start=start
                )
            with torch.no_grad():
                predictions[begin:end] = model(adv).argmax(dim=1).cpu().numpy()
            adversarial[begin:end] = adv.cpu().numpy()
            report(progress, stage, end, len(images))
    finally:
        for p, flag in zip(model.parameters(), requires, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)

    correct_before = clean_predictions == labels
    success = predictions != labels
    flipped = success & correct_before
    return AttackResult(
        attack=method,
        epsilon=float(epsilon),
        steps=steps,
        step_size=alpha,
        images=adversarial,
        predictions=predictions,
        success=success,
        clean_accuracy=float(100.0 * correct_before.mean()),
        adversarial_accuracy=float(100.0 * (~success).mean()),
        success_rate=float(100.0 * flipped.sum() / max(1, correct_before.sum())),
        seed=seed if method == "pgd" and random_start else None,
    )


def pgd(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, *, epsilon: float, **options
) -> AttackResult:
    """PGD L∞ with random start; see :func:`attack` for the options."""
    return attack(model, images, labels, method="pgd", epsilon=epsilon, **options)


def fgsm(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, *, epsilon: float, **options
) -> AttackResult:
    """FGSM; see :func:`attack` for the options."""
    return attack(model, images, labels, method="fgsm", epsilon=epsilon, **options)
