"""Train and evaluate a classifier from :mod:`ladis_core.model.spec` on CPU or CUDA.

Reproducible without global seeding: the weights are initialised inside
``torch.random.fork_rng`` (the global generator is restored afterwards), and batches and
augmentation are drawn from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ladis_core.devices import resolve_device
from ladis_core.errors import check
from ladis_core.model.data import ImageDataset
from ladis_core.model.spec import ModelSpec, build_model
from ladis_core.progress import ProgressCallback, report


@dataclass(frozen=True)
class TrainingOptions:
    """How to train: SGD with Nesterov momentum and a one-cycle learning-rate schedule.

    ``shift`` is the largest random translation (pixels) applied to training images, a
    cheap augmentation that helps small data sets such as the digits.
    """

    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    shift: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.epochs >= 1, f"epochs={self.epochs} must be at least 1")
        check(self.batch_size >= 1, f"batch_size={self.batch_size} must be at least 1")
        check(self.learning_rate > 0, f"learning_rate={self.learning_rate} must be positive")
        check(self.shift >= 0, f"shift={self.shift} must be 0 or more pixels")


@dataclass(frozen=True)
class TrainingResult:
    """What training produced. Accuracies are percentages (0–100)."""

    epochs: int
    seconds: float
    train_accuracy: float
    validation_accuracy: float | None
    #: mean training loss of every epoch, in order
    losses: list[float] = field(default_factory=list)


def seeded_model(spec: ModelSpec, *, seed: int) -> nn.Module:
    """:func:`~ladis_core.model.spec.build_model` with weights drawn from ``seed``.

    torch's layer initialisers use the global generator; ``fork_rng`` saves and restores
    it, so the caller's random state is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(spec)


def _to_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    return torch.from_numpy(np.ascontiguousarray(array))


def predict(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Predicted classes of ``images`` (float32 (N, C, H, W) in [0, 1]): int64 (N,).

    The model is put in eval mode (batch-norm running statistics, as in serving).
    """
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    tensor = _to_tensor(images)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(tensor), batch_size):
            batch = tensor[start : start + batch_size].to(dev, dtype=torch.float32)
            out.append(model(batch).argmax(dim=1).cpu())
    if not out:
        return np.empty(0, dtype=np.int64)
    return torch.cat(out).numpy().astype(np.int64)


def accuracy(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> float:
    """Share of ``dataset`` classified correctly, in percent (0–100)."""
    check(len(dataset) > 0, "cannot measure accuracy on an empty data set")
    predicted = predict(model, dataset.images, batch_size=batch_size, device=device)
    return float(100.0 * np.mean(predicted == dataset.labels))


def _random_shift(batch: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate every image by up to ``shift`` pixels (edge-replicated padding).

    ``batch``: (B, C, H, W) on any device; the offsets come from ``generator`` (CPU).
    """
    if shift <= 0:
        return batch
    b, _, h, w = batch.shape
    padded = nn.functional.pad(batch, (shift, shift, shift, shift), mode="replicate")
    offsets = torch.randint(0, 2 * shift + 1, (b, 2), generator=generator)
    out = torch.empty_like(batch)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    return out


def train_model(
    model: nn.Module,
    train: ImageDataset,
    *,
    validation: ImageDataset | None = None,
    options: TrainingOptions | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> TrainingResult:
    """Train ``model`` in place on ``train`` with cross-entropy; returns the accuracies.

    ``train.images``: float32 (N, C, H, W) in [0, 1]; ``train.labels``: int64 (N,).
    Progress is reported per batch under the stage ``"train"``. ``on_epoch_end(epoch,
    model)`` runs after every epoch (e.g. validation passes under a capture hook); the
    model is left in eval mode on ``device``.
    """
    options = options or TrainingOptions()
    check(len(train) > 0, "the training set is empty")
    dev = resolve_device(device)
    model.to(dev)
    generator = torch.Generator().manual_seed(options.seed)
    images = _to_tensor(train.images)
    labels = _to_tensor(train.labels)
    steps_per_epoch = math.ceil(len(train) / options.batch_size)
    total_steps = steps_per_epoch * options.epochs
    optimiser = torch.optim.SGD(
        model.parameters(),
        lr=options.learning_rate,
        momentum=options.momentum,
        nesterov=True,
        weight_decay=options.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=options.learning_rate, total_steps=total_steps, pct_start=0.25
    )
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    losses: list[float] = []
    step = 0
    report(progress, "train", 0, total_steps, f"{options.epochs} epochs on {dev}")
    for epoch in range(options.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        running, seen = 0.0, 0
        for start in range(0, len(order), options.batch_size):
            rows = order[start : start + options.batch_size]
            if len(rows) < 2:
                continue  # batch-norm cannot train on a single image
            batch = _random_shift(images[rows], options.shift, generator).to(dev)
            target = labels[rows].to(dev)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch), target)
            loss.backward()
            optimiser.step()
            if step < total_steps - 1:
                schedule.step()
            step += 1
            running += float(loss.detach()) * len(rows)
            seen += len(rows)
            report(
                progress,
                "train",
                step,
                total_steps,
                f"epoch {epoch + 1}/{options.epochs}, loss {running / seen:.3f}",
            )
        losses.append(running / max(1, seen))
        model.eval()
        if on_epoch_end is not None:
            on_epoch_end(epoch, model)
    model.eval()
    report(progress, "train", total_steps, total_steps, "done")
    return TrainingResult(
        epochs=options.epochs,
        seconds=time.perf_counter() - started,
        train_accuracy=accuracy(model, train, device=dev),
        validation_accuracy=accuracy(model, validation, device=dev)
        if validation is not None and len(validation)
        else None,
        losses=losses,
    )
