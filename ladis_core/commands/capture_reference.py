"""``python -m ladis_core capture-reference``: the reference trial of your own model."""

from __future__ import annotations

import argparse
from dataclasses import replace

NAME = "capture-reference"
HELP = "capture the reference trial of your own model on natural images"
DESCRIPTION = """\
Run natural validation images through your own PyTorch classifier and record, per batch,
its input, its output and its penultimate layer (found by a forward pass: the input of
the module that produces the logits) as an smdebug trial in EVAL mode: the reference the
monitoring job compares live traffic with. The chosen layer, the preprocessing and the
class names are recorded beside the trial (ladis.json), so `serve` and `monitor` use the
same ones.

--model PKG.MODULE:CALLABLE is imported from the working folder or PYTHONPATH; the
callable returns a torch.nn.Module. --data is a folder with one sub-folder per class
(their names become the class names), a flat folder of PNG/JPEG images, or an .npz with
`images` (N, C, H, W) in [0, 1] and optional `labels`. Bad input is one line on stderr,
exit code 2, and nothing is written.

examples:
  python -m ladis_core capture-reference --model mymodels.cnn:build --weights cnn.pt \\
      --data ./validation --out s3://ladis/trials/my-model/reference --image-size 64 64
  python -m ladis_core capture-reference --model torchvision.models:resnet18 \\
      --data val.npz --out ./trials/reference --mean 0.485 0.456 0.406 --std 0.229 0.224 0.225"""


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(parser: argparse.ArgumentParser) -> None:
    from ladis_core.commands._model_args import add_model_arguments

    parser.add_argument(
        "--model", required=True, metavar="PKG.MODULE:CALLABLE", help="the model to capture"
    )
    parser.add_argument(
        "--data", required=True, metavar="DIR|FILE.npz", help="natural validation images"
    )
    parser.add_argument(
        "--out", required=True, metavar="URI", help="where the trial goes: s3:// or a folder"
    )
    parser.add_argument(
        "--layers",
        type=_csv,
        default=[],
        metavar="A,B,…",
        help="extra layers to record: module-name regexes, comma-separated (e.g. layer3,layer4)",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--batch-size", type=int, default=64, metavar="N", help="images per step (default 64)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where the model runs (default auto)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a trial already at --out")


def _check_options(args: argparse.Namespace, channels: int) -> None:
    from ladis_core.errors import InputError

    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size} must be at least 1")
    for option, values in (("--mean", args.mean), ("--std", args.std)):
        if values and len(values) not in (1, channels):
            raise InputError(
                f"{option} has {len(values)} values; the images have {channels} channels"
            )


def _check_classes(args: argparse.Namespace, images, num_classes: int, class_names) -> None:
    from ladis_core.errors import InputError

    if class_names and len(class_names) != num_classes:
        raise InputError(
            f"{len(class_names)} class names for a model with {num_classes} outputs; "
            "give one name per output"
        )
    labels = images.labels
    if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(
            f"--data {args.data}: labels run from {labels.min()} to {labels.max()}, "
            f"but the model has {num_classes} outputs"
        )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ladis_core.capture import capture_reference
    from ladis_core.capture.plan import plan_capture, tensor_shapes
    from ladis_core.commands._model_args import preprocessing_from, read_class_names
    from ladis_core.devices import resolve_device
    from ladis_core.model.images import load_reference_images
    from ladis_core.model.imported import load_imported
    from ladis_core.progress import bar_progress

    progress = bar_progress()
    preprocessing = preprocessing_from(args)
    given_names = read_class_names(args.class_names)
    device = resolve_device(args.device, default="auto")
    model = load_imported(
        args.model, weights=args.weights, preprocessing=preprocessing, device=device
    )
    images = load_reference_images(
        args.data,
        image_size=preprocessing.image_size,
        channels=args.channels or 3,
        progress=progress,
    )
    input_shape = tuple(int(v) for v in images.images.shape[1:])
    _check_options(args, input_shape[0])
    preprocessing = replace(preprocessing, image_size=input_shape[1:])  # what serve resizes to
    # everything is checked before the first object is written
    plan = plan_capture(
        model, layers=args.layers, penultimate=args.penultimate, input_shape=input_shape
    )
    shapes = tensor_shapes(model, plan.tensor_names, input_shape)
    num_classes = shapes[plan.output][0]
    class_names = given_names or images.class_names
    _check_classes(args, images, num_classes, class_names)

    predictions: list[np.ndarray] = []
    tensor = torch.from_numpy(images.images)
    batches = [tensor[i : i + args.batch_size] for i in range(0, len(tensor), args.batch_size)]
    summary = capture_reference(
        model,
        batches,
        args.out,
        layers=args.layers,
        overwrite=args.overwrite,
        penultimate=args.penultimate,
        preprocessing=preprocessing,
        class_names=class_names,
        on_output=lambda logits: predictions.append(logits.argmax(dim=1).cpu().numpy()),
        progress=progress,
    )
    predicted = np.concatenate(predictions)
    found = plan.penultimate
    how = (
        f"found by a forward pass: the {'output of ' + found.module if found.kind == 'output' else 'input'} "
        f"feeding {found.head}"
        if found.detected
        else "named with --penultimate"
    )
    print(f"captured {len(images)} images in {summary.steps} steps into {summary.uri}")
    print(f"  penultimate layer: {summary.penultimate} ({how})")
    print("  layers: " + ", ".join(f"{n} {shapes.get(n, '?')}" for n in summary.tensors))
    sizes = "×".join(str(v) for v in input_shape[1:])
    norm = (
        f", mean {preprocessing.mean}, std {preprocessing.std}" if preprocessing.normalizes else ""
    )
    print(f"  preprocessing: {input_shape[0]} channels, {sizes} pixels{norm}")
    shown = ", ".join(class_names[:10]) + (" …" if len(class_names) > 10 else "")
    print(
        f"  classes: {num_classes}"
        + (f" ({shown})" if class_names else " (no names: plain indices)")
    )
    counts = np.bincount(predicted, minlength=num_classes)
    print(f"  predicted classes: {', '.join(str(int(c)) for c in counts)}")
    if images.labels is not None:
        accuracy = 100.0 * float(np.mean(predicted == images.labels))
        print(f"  accuracy on the labelled images: {accuracy:.1f}%")
    return 0
