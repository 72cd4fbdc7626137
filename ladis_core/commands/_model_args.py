"""Command-line options shared by ``capture-reference`` and ``serve`` for a user's own
model: ``--weights``, ``--penultimate``, the preprocessing and the class names."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ladis_core.errors import InputError
from ladis_core.trials.meta import Preprocessing

MAX_CLASS_NAMES_BYTES = 1 << 20


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("your own model (--model PKG.MODULE:CALLABLE)")
    group.add_argument(
        "--weights",
        metavar="STATE_DICT.pt",
        help="state dict to load into the model (torch.save(model.state_dict(), FILE))",
    )
    group.add_argument(
        "--penultimate",
        metavar="MODULE",
        help="module whose output is the penultimate layer (default: found by a forward "
        "pass: the input of the module that produces the logits)",
    )
    group.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="resize every image to H×W pixels (needed when images differ in size)",
    )
    group.add_argument(
        "--mean",
        type=float,
        nargs="+",
        metavar="M",
        help="per-channel mean the model expects inputs normalised with (pixels in [0, 1]); "
        "with --std. Default: the model takes [0, 1] pixels as they are",
    )
    group.add_argument(
        "--std", type=float, nargs="+", metavar="S", help="per-channel std (with --mean)"
    )
    group.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="grey (1) or RGB (3) input (default 3, or as the reference recorded)",
    )
    group.add_argument(
        "--class-names",
        metavar="FILE",
        help="class names, one per line (or a JSON list), in the order of the model's outputs",
    )


def preprocessing_from(args: argparse.Namespace) -> Preprocessing:
    size = tuple(args.image_size) if args.image_size else None
    if (args.mean is None) != (args.std is None):
        raise InputError("give --mean and --std together (one value per channel, or one for all)")
    return Preprocessing(
        image_size=size,  # type: ignore[arg-type]
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
    )


def read_class_names(path: str | None) -> tuple[str, ...]:
    """Names from a file of one name per line, or a JSON list; ``()`` without a file."""
    if not path:
        return ()
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()[: MAX_CLASS_NAMES_BYTES + 1]
    except OSError as exc:
        raise InputError(f"--class-names {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CLASS_NAMES_BYTES:
        raise InputError(f"--class-names {path} is larger than 1 MiB")
    text = data.decode("utf-8", errors="replace")
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--class-names {path} is not a JSON list ({exc})") from None
        if not isinstance(names, list) or not all(isinstance(n, str | int) for n in names):
            raise InputError(f"--class-names {path} must be a JSON list of names")
        names = [str(n) for n in names]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise InputError(f"--class-names {path} holds no names")
    if any(len(n) > 200 for n in names):
        raise InputError(f"--class-names {path}: a name is longer than 200 characters")
    return tuple(names)
