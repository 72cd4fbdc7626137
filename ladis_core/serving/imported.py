"""Serving your own model: ``PKG.MODULE:CALLABLE`` + a state dict, with the preprocessing,
class names and penultimate layer the reference capture recorded (``ladis.json``), so
the endpoint feeds the model exactly as the reference did and both trials hold the same
layer.

Explicit settings win over the record; with neither, the image size must be given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ladis_core.errors import InputError
from ladis_core.serving.model import ServedModel, _open_capture
from ladis_core.trials.meta import Preprocessing, TrialMeta, read_trial_meta


def _settings(
    reference: str | None,
    preprocessing: Preprocessing | None,
    class_names: Sequence[str],
    channels: int | None,
) -> tuple[Preprocessing, tuple[str, ...], int, TrialMeta | None]:
    meta = None
    if reference:
        meta = read_trial_meta(reference)
        if meta is None:
            raise InputError(
                f"the reference trial {reference} records no preprocessing (no usable "
                "ladis.json); capture it with capture-reference, or give --image-size instead"
            )
    given = preprocessing or Preprocessing()
    recorded = meta.preprocessing if meta is not None else Preprocessing()
    chosen = replace(
        recorded,
        image_size=given.image_size or recorded.image_size,
        mean=given.mean if given.mean is not None else recorded.mean,
        std=given.std if given.std is not None else recorded.std,
    )
    if chosen.image_size is None:
        raise InputError(
            "--model PKG.MODULE:CALLABLE needs --reference TRIAL (to reuse the preprocessing "
            "recorded at capture time) or --image-size H W"
        )
    names = tuple(class_names) or (meta.class_names if meta is not None else ())
    if channels is None:
        channels = meta.input_shape[0] if meta is not None and meta.input_shape else 3
    return chosen, names, int(channels), meta


def load_imported_served(
    target: str,
    *,
    weights: str | Path | None = None,
    reference: str | None = None,
    preprocessing: Preprocessing | None = None,
    class_names: Sequence[str] = (),
    channels: int | None = None,
    penultimate: str | None = None,
    device: str = "cpu",
    capture_uri: str | None = None,
    layers: Sequence[str] = (),
    queue_policy: str | None = None,
) -> ServedModel:
    """A :class:`ServedModel` of ``target`` (see the module docstring); with
    ``capture_uri``, every request is recorded, on the reference's penultimate layer.
    :class:`InputError` when the model's penultimate layer is not the reference's."""
    from ladis_core.model.imported import ImportedSpec, load_imported

    chosen, names, channels, meta = _settings(reference, preprocessing, class_names, channels)
    model = load_imported(target, weights=weights, preprocessing=chosen, device=device)
    input_shape = (channels, *chosen.image_size)  # type: ignore[misc]
    if penultimate is None and meta is not None and not meta.detected:
        penultimate = meta.penultimate_module  # named by hand at capture: the same here
    if meta is not None:
        from ladis_core.capture.plan import locate_penultimate

        found = locate_penultimate(model, penultimate=penultimate, input_shape=input_shape)
        if found.tensor != meta.penultimate:
            raise InputError(
                f"the served model's penultimate layer is {found.tensor}, the reference's "
                f"{meta.penultimate}: serve the model the reference was captured from"
            )
    capture = None
    if capture_uri:
        capture = _open_capture(
            model,
            capture_uri,
            layers=layers,
            input_shape=input_shape,
            penultimate=penultimate,
            preprocessing=chosen,
            class_names=names,
            queue_policy=queue_policy,
        )
    spec = ImportedSpec(
        architecture=target,
        input_shape=input_shape,  # type: ignore[arg-type]
        class_names=list(names),
        preprocessing=chosen,
    )
    return ServedModel(
        model,
        spec,  # type: ignore[arg-type]
        device=device,
        capture=capture,
        capture_uri=capture_uri,
    )
