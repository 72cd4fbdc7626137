"""The stages of a demo build before the traffic: data, model, natural pool, reference
capture, attacks.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from ladis_core import store
from ladis_core.demo.locations import _delete_prefix, _note_uri
from ladis_core.demo.options import DemoOptions, TrafficWindow
from ladis_core.errors import DataNotFoundError, check
from ladis_core.model.data import (
    DatasetSplits,
    ImageDataset,
    load_digits,
    load_image_folder,
)
from ladis_core.model.labels import epsilon_label
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger("ladis.demo")


def _delete_downstream(world: str, endpoint: str, *, keep_reference: bool) -> None:
    """Remove what is derived from the model: traffic, jobs, experiment, attack notes and
    (unless ``keep_reference``) the reference trial."""
    prefixes = [
        layout.inference_trial_uri(world, endpoint),
        layout.provenance_uri(world, endpoint),
        layout.monitoring_uri(world, endpoint),
    ]
    if not keep_reference:
        prefixes.append(layout.reference_trial_uri(world, endpoint))
    removed = sum(_delete_prefix(p) for p in prefixes)
    notes = ["attacks"] + ([] if keep_reference else ["reference"])
    for note in notes:
        store.delete(_note_uri(world, endpoint, note))
    store.delete(layout.experiment_uri(world, endpoint))
    if removed:
        log.warning(
            "removed %d objects of %s derived from an earlier model or traffic", removed, endpoint
        )


def _load_data(options: DemoOptions, progress: ProgressCallback | None) -> DatasetSplits:
    report(progress, "data", 0, 1, options.data_dir or "scikit-learn digits")
    if options.data_dir:
        splits = load_image_folder(
            options.data_dir,
            size=options.image_size,
            seed=options.seed,
            fractions=options.fractions,
            max_per_class=options.max_per_class,
            progress=progress,
        )
    else:
        splits = load_digits(
            size=options.image_size, seed=options.seed, fractions=options.fractions
        )
    need = 2 * options.n_samples
    check(
        len(splits.validation) >= need,
        f"{splits.source} gives {len(splits.validation)} validation images; the monitoring baseline needs at "
        f"least {need} (2 × n_samples={options.n_samples}): add images or lower n_samples",
    )
    check(
        len(splits.test) >= options.n_samples,
        f"{splits.source} gives {len(splits.test)} test images to send as traffic; at least "
        f"n_samples={options.n_samples} are needed",
    )
    report(progress, "data", 1, 1, splits.describe())
    return splits


def _model_stage(
    world: str,
    options: DemoOptions,
    splits: DatasetSplits,
    device: str,
    skipped: list[str],
    progress: ProgressCallback | None,
) -> tuple[Any, dict[str, Any]]:
    """Train and store the model, or load the stored one. Returns it with its accuracies."""
    from ladis_core.model.spec import ModelSpec, load_model, save_model
    from ladis_core.model.store import resolve_model_dir
    from ladis_core.model.training import TrainingOptions, accuracy, seeded_model, train_model

    model_uri = layout.model_uri(world, options.endpoint)
    note_uri = _note_uri(world, options.endpoint, "training")
    if store.exists(layout.join(model_uri, "model.json")) and store.exists(
        layout.join(model_uri, "model.pt")
    ):
        with tempfile.TemporaryDirectory(prefix="ladis-model-") as cache:
            model, _spec = load_model(resolve_model_dir(model_uri, cache_dir=cache), device=device)
        try:
            training = store.read_json(note_uri)
        except DataNotFoundError:
            training = {"test_accuracy": accuracy(model, splits.test, device=device)}
        skipped.append("training")
        return model, training

    spec = ModelSpec(
        architecture=options.architecture,
        num_classes=len(splits.class_names),
        input_shape=splits.input_shape,
        mean=tuple([0.5] * splits.input_shape[0]),
        std=tuple([0.5] * splits.input_shape[0]),
        class_names=list(splits.class_names),
    )
    model = seeded_model(spec, seed=options.seed)
    result = train_model(
        model,
        splits.train,
        validation=splits.validation,
        device=device,
        progress=progress,
        options=TrainingOptions(
            epochs=options.epochs,
            batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            seed=options.seed,
        ),
    )
    test_accuracy = accuracy(model, splits.test, device=device)
    log.info(
        "trained %s in %.0f s: test accuracy %.1f%%",
        options.architecture,
        result.seconds,
        test_accuracy,
    )
    with tempfile.TemporaryDirectory(prefix="ladis-model-") as tmp:
        save_model(model.cpu(), spec, tmp)
        model.to(device)
        # weights before the spec: the spec's presence is what marks a stored model
        store.write_bytes(layout.join(model_uri, "model.pt"), (Path(tmp) / "model.pt").read_bytes())
        store.write_bytes(
            layout.join(model_uri, "model.json"),
            (Path(tmp) / "model.json").read_bytes(),
            content_type="application/json",
        )
    training = {
        "test_accuracy": test_accuracy,
        "validation_accuracy": result.validation_accuracy,
        "train_accuracy": result.train_accuracy,
        "epochs": result.epochs,
        "seconds": round(result.seconds, 2),
        "losses": result.losses,
    }
    store.write_json(note_uri, training)
    return model, training


def _natural_npz(pool: ImageDataset) -> bytes:
    """The natural pool as ``natural.npz``: images float32 (N, C, H, W), labels int64 (N,),
    class_names (str), dataset_indices int64 (N,) (rows in the source data set)."""
    buffer = BytesIO()
    np.savez_compressed(
        buffer,
        images=pool.images,
        labels=pool.labels,
        class_names=np.array(pool.class_names),
        dataset_indices=pool.indices,
    )
    return buffer.getvalue()


def _reference_stage(
    world: str,
    options: DemoOptions,
    model: Any,
    validation: ImageDataset,
    skipped: list[str],
    progress: ProgressCallback | None,
) -> None:
    """The final validation pass under the EVAL-mode hook → the reference trial.

    The reference must describe the deployed weights, so it is the validation pass after
    the last epoch (earlier epochs' passes would mix older models in)."""
    from ladis_core.capture import capture_reference

    note_uri = _note_uri(world, options.endpoint, "reference")
    if store.exists(note_uri):
        skipped.append("reference capture")
        return
    batch = 50
    batches = [validation.images[i : i + batch] for i in range(0, len(validation), batch)]
    summary = capture_reference(
        model,
        batches,
        layout.reference_trial_uri(world, options.endpoint),
        layers=options.capture_layers,
        include_inputs=True,
        overwrite=True,
        progress=progress,
    )
    store.write_json(
        note_uri,
        {"steps": summary.steps, "rows": len(validation), "tensors": list(summary.tensors)},
    )


def _attack_stage(
    options: DemoOptions,
    model: Any,
    pool: ImageDataset,
    windows: Sequence[TrafficWindow],
    device: str,
    progress: ProgressCallback | None,
) -> tuple[dict[tuple[str, float], np.ndarray], list[dict[str, Any]]]:
    """Every (attack, ε) of the story, run once on the whole natural pool."""
    from ladis_core.model.attacks import attack

    keys = sorted(
        {w.key for w in windows if w.adversarial}, key=lambda k: (k[0] != "pgd", k[1], k[0])
    )
    images: dict[tuple[str, float], np.ndarray] = {}
    summaries = []
    for number, (method, epsilon) in enumerate(keys):
        result = attack(
            model,
            pool.images,
            pool.labels,
            method=method,
            epsilon=epsilon,
            steps=options.pgd_steps,
            seed=options.seed + number,
            device=device,
            progress=progress,
        )
        images[(method, epsilon)] = result.images
        summaries.append(result.summary())
        log.info(
            "%s ε=%s: success rate %.1f%%", method, epsilon_label(epsilon), result.success_rate
        )
    return images, summaries
