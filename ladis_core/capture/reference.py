"""The reference capture (EVAL mode): validation passes during or after training."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ladis_core.capture.hooks import _smdebug
from ladis_core.capture.serving import _as_tensor
from ladis_core.capture.staging import CaptureSummary, _StagedCapture
from ladis_core.errors import InputError
from ladis_core.progress import ProgressCallback, report
from ladis_core.trials.meta import Preprocessing


class EvalCapture(_StagedCapture):
    """Reference capture: saves every ``save_every``-th forward pass in EVAL mode.

    ::

        with EvalCapture(model, "s3://ladis/trials/digits/reference", layers=RESIDUAL_BLOCKS) as cap:
            for epoch in range(epochs):
                cap.set_mode("TRAIN"); train_one_epoch(model)     # nothing saved
                cap.set_mode("EVAL");  validate(model)            # saved
        print(cap.summary)

    The destination must not hold a trial yet (``overwrite=True`` deletes it first).
    Steps are published on :meth:`flush` and on close.

    The penultimate layer is found by a dry forward pass of an input of ``input_shape``
    (C, H, W; guessed when ``None``), or named with ``penultimate`` (a module name); it is
    recorded with ``preprocessing`` and ``class_names`` in the trial's ``ladis.json``.
    """

    def __init__(
        self,
        model: nn.Module | None,
        out: str,
        *,
        layers: Sequence[str] = (),
        save_every: int = 1,
        include_inputs: bool = True,
        overwrite: bool = False,
        penultimate: str | None = None,
        input_shape: Sequence[int] | None = None,
        preprocessing: Preprocessing | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        super().__init__(
            model,
            out,
            mode="EVAL",
            layers=layers,
            save_every=save_every,
            include_inputs=include_inputs,
            append=False,
            overwrite=overwrite,
            penultimate=penultimate,
            input_shape=input_shape,
            preprocessing=preprocessing,
            class_names=class_names,
        )

    def set_mode(self, mode: str) -> None:
        """``"TRAIN"`` (forward passes not saved) or ``"EVAL"`` (saved)."""
        _, mode_keys, _ = _smdebug()
        text = str(mode).upper()
        if text not in ("TRAIN", "EVAL"):
            raise InputError(f"mode={mode!r} must be TRAIN or EVAL")
        self.hook.set_mode(mode_keys[text])

    @property
    def summary(self) -> CaptureSummary | None:
        return self._summary

    def __enter__(self) -> EvalCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def capture_reference(
    model: nn.Module,
    batches: Iterable[Any],
    out: str,
    *,
    layers: Sequence[str] = (),
    save_every: int = 1,
    include_inputs: bool = True,
    overwrite: bool = False,
    penultimate: str | None = None,
    preprocessing: Preprocessing | None = None,
    class_names: Sequence[str] = (),
    on_output: Callable[[torch.Tensor], None] | None = None,
    progress: ProgressCallback | None = None,
) -> CaptureSummary:
    """Run ``batches`` through ``model`` (eval mode, no gradients) under an
    :class:`EvalCapture` writing to ``out``; one forward pass per batch.

    ``batches``: tensors or arrays of shape (k, C, H, W) (or ``(images, labels)`` pairs),
    moved to the model's device. The penultimate layer is found by a forward pass at the
    first batch's image size unless ``penultimate`` names its module; ``preprocessing``
    and ``class_names`` are recorded with it. ``on_output(logits)`` sees every batch's
    logits (k, classes). Progress stage: ``capture``.
    """
    total = len(batches) if hasattr(batches, "__len__") else 0  # type: ignore[arg-type]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        raise InputError("no batches to capture: the reference needs natural validation images")
    input_shape = tuple(_as_tensor(first, device).shape[1:])
    was_training = model.training
    model.eval()
    try:
        with (
            EvalCapture(
                model,
                out,
                layers=layers,
                save_every=save_every,
                include_inputs=include_inputs,
                overwrite=overwrite,
                penultimate=penultimate,
                input_shape=input_shape,
                preprocessing=preprocessing,
                class_names=class_names,
            ) as capture,
            torch.no_grad(),
        ):
            report(progress, "capture", 0, total)
            for position, batch in enumerate(itertools.chain([first], iterator), 1):
                logits = model(_as_tensor(batch, device))
                if on_output is not None:
                    on_output(logits)
                report(progress, "capture", position, max(total, position))
            capture.hook._close_writers()
    finally:
        model.train(was_training)
    assert capture.summary is not None
    return capture.summary
