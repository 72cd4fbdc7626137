"""Image data sets for the demo world: scikit-learn's digits and user image folders.

Every loader returns typed arrays in the layout the model and the capture expect:
images float32 of shape (N, C, H, W) in [0, 1], labels int64 of shape (N,), and the
class names. Splits into train / validation / test are stratified by class and fixed by
an explicit seed, so a world rebuilt with the same seed sees the same images.

- :func:`load_digits`: the 1,797 8×8 handwritten digits that ship inside scikit-learn
  (no download), scaled from 0..16 to [0, 1] and upscaled bilinearly (e.g. to 32×32,
  3 channels, as a colour classifier would see them).
- :func:`load_image_folder`: ``DIR/<class name>/**/<image>`` (e.g. Tiny ImageNet's
  ``train`` folder), decoded with Pillow and resized to ``size``×``size``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ladis_core.errors import InputError, check
from ladis_core.progress import ProgressCallback, report

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
)
#: train / validation / test shares of every class
DEFAULT_FRACTIONS = (0.5, 0.25, 0.25)


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Images with labels.

    ``images``: float32 ndarray of shape (N, C, H, W), values in [0, 1].
    ``labels``: int64 ndarray of shape (N,), values in ``range(len(class_names))``.
    ``indices``: int64 ndarray of shape (N,), the row of every image in the data set it
    was taken from (so a split can be traced back to its source).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    indices: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        check(
            self.images.ndim == 4, f"images must have shape (N, C, H, W), got {self.images.shape}"
        )
        check(
            len(self.labels) == len(self.images) == len(self.indices),
            f"{len(self.images)} images but {len(self.labels)} labels and {len(self.indices)} indices",
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(int(v) for v in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, rows: np.ndarray | Sequence[int]) -> ImageDataset:
        """The rows ``rows`` (positions in this data set) as a new data set."""
        rows = np.asarray(rows, dtype=np.int64)
        return ImageDataset(
            images=self.images[rows],
            labels=self.labels[rows],
            class_names=self.class_names,
            indices=self.indices[rows],
            source=self.source,
        )

    def class_counts(self) -> np.ndarray:
        """int64 ndarray of shape (num_classes,): images per class."""
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A fixed, stratified train / validation / test split of one data set."""

    train: ImageDataset
    validation: ImageDataset
    test: ImageDataset
    source: str
    seed: int

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.train.input_shape

    def describe(self) -> str:
        c, h, w = self.input_shape
        return (
            f"{self.source}: {len(self.class_names)} classes, {c}×{h}×{w}, "
            f"{len(self.train)} train / {len(self.validation)} validation / {len(self.test)} test"
        )


def resize_images(images: np.ndarray, *, size: int, channels: int) -> np.ndarray:
    """Bilinear resize to ``size``×``size`` and repeat a grey channel to ``channels``.

    ``images``: float ndarray of shape (N, C0, H0, W0) in [0, 1] with C0 = 1 or
    C0 = ``channels``. Returns float32 (N, channels, size, size), clipped to [0, 1]
    (bilinear interpolation cannot overshoot, the clip only guards rounding).
    """
    import torch
    import torch.nn.functional as F

    check(images.ndim == 4, f"images must have shape (N, C, H, W), got {images.shape}")
    check(size >= 1, f"size={size} must be a positive number of pixels")
    check(
        images.shape[1] in (1, channels),
        f"cannot turn {images.shape[1]}-channel images into {channels} channels",
    )
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    tensor = tensor.clamp(0.0, 1.0)
    if tensor.shape[1] != channels:
        tensor = tensor.expand(-1, channels, -1, -1)
    return tensor.contiguous().numpy().astype(np.float32, copy=False)


def stratified_split(
    labels: np.ndarray,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of a train / validation / test split, stratified by class.

    ``labels``: int ndarray of shape (N,). Each class is shuffled with
    ``np.random.default_rng(seed)`` and cut by ``fractions`` (train, validation, test;
    they must sum to 1); rounding leftovers go to train. Every class with at least three
    images gets at least one in each part. Returns three sorted int64 arrays.
    """
    check(
        len(fractions) == 3,
        f"fractions={tuple(fractions)} needs three shares (train, validation, test)",
    )
    check(
        all(f > 0 for f in fractions) and abs(sum(fractions) - 1.0) < 1e-6,
        f"fractions={tuple(fractions)} must be positive and sum to 1",
    )
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        rows = rows[rng.permutation(len(rows))]
        n = len(rows)
        n_val = int(round(fractions[1] * n))
        n_test = int(round(fractions[2] * n))
        if n >= 3:
            n_val, n_test = max(1, n_val), max(1, n_test)
        n_train = max(0, n - n_val - n_test)
        parts[0].append(rows[:n_train])
        parts[1].append(rows[n_train : n_train + n_val])
        parts[2].append(rows[n_train + n_val :])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)  # type: ignore[return-value]


def split_dataset(
    dataset: ImageDataset, *, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> DatasetSplits:
    """Split ``dataset`` with :func:`stratified_split`."""
    train, validation, test = stratified_split(dataset.labels, fractions=fractions, seed=seed)
    return DatasetSplits(
        train=dataset.subset(train),
        validation=dataset.subset(validation),
        test=dataset.subset(test),
        source=dataset.source,
        seed=seed,
    )


def digits_dataset(*, size: int = 32, channels: int = 3) -> ImageDataset:
    """All 1,797 scikit-learn digits as one :class:`ImageDataset` (classes "0" … "9")."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # pixel values are counts 0..16 of an 8×8 grid; scale to [0, 1] before resizing
    images = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    return ImageDataset(
        images=resize_images(images, size=size, channels=channels),
        labels=labels,
        class_names=tuple(str(name) for name in bunch.target_names),
        indices=np.arange(len(labels), dtype=np.int64),
        source="scikit-learn digits",
    )


def load_digits(
    *,
    size: int = 32,
    channels: int = 3,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> DatasetSplits:
    """scikit-learn's digits, upscaled to ``channels``×``size``×``size``, split by ``seed``."""
    return split_dataset(
        digits_dataset(size=size, channels=channels), fractions=fractions, seed=seed
    )


def _class_folders(root: Path) -> list[tuple[str, list[Path]]]:
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if files:
            found.append((folder.name, files))
    return found


def image_folder_dataset(
    directory: str | Path,
    *,
    size: int = 32,
    channels: int = 3,
    max_per_class: int | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> ImageDataset:
    """Every image under ``directory/<class name>/`` (searched recursively), resized.

    Class names are the sub-folder names, sorted; the label is the position in that list.
    With ``max_per_class`` at most that many images of each class are kept, chosen with
    ``np.random.default_rng(seed)``. Files Pillow cannot decode are skipped with a
    warning. Raises :class:`InputError` when the folder does not exist or holds no
    images in class sub-folders.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(directory).expanduser()
    if not root.is_dir():
        raise InputError(
            f"--data {directory}: no such folder; give a folder with one sub-folder of images per class"
        )
    classes = _class_folders(root)
    if not classes:
        raise InputError(
            f"--data {directory}: no images found; expected one sub-folder per class holding image "
            f"files ({', '.join(IMAGE_EXTENSIONS[:4])}, …), e.g. {directory}/cat/001.png"
        )
    check(
        len(classes) >= 2,
        f"--data {directory}: only one class folder with images ({classes[0][0]!r}); a classifier needs at least two",
    )
    check(channels in (1, 3), f"channels={channels} must be 1 (grey) or 3 (RGB)")
    check(
        max_per_class is None or max_per_class >= 1,
        f"max_per_class={max_per_class} must be at least 1",
    )
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, Path]] = []
    for label, (_name, files) in enumerate(classes):
        if max_per_class is not None and len(files) > max_per_class:
            keep = np.sort(rng.choice(len(files), size=max_per_class, replace=False))
            files = [files[i] for i in keep]
        chosen.extend((label, path) for path in files)

    mode = "RGB" if channels == 3 else "L"
    total = len(chosen)
    images = np.empty((total, channels, size, size), dtype=np.float32)
    labels = np.empty(total, dtype=np.int64)
    kept = 0
    skipped: list[str] = []
    report(progress, "load images", 0, total, str(root))
    for i, (label, path) in enumerate(chosen):
        try:
            with Image.open(path) as img:
                img = img.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                pixels = np.asarray(img, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            skipped.append(f"{path.name} ({exc.__class__.__name__})")
            continue
        images[kept] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
        labels[kept] = label
        kept += 1
        if (i + 1) % 500 == 0:
            report(progress, "load images", i + 1, total)
    report(progress, "load images", total, total, f"{kept} images in {len(classes)} classes")
    if skipped:
        log.warning(
            "skipped %d files that are not readable images: %s",
            len(skipped),
            ", ".join(skipped[:5]),
        )
    if kept == 0:
        raise InputError(f"--data {directory}: none of the {total} image files could be read")
    return ImageDataset(
        images=images[:kept],
        labels=labels[:kept],
        class_names=tuple(name for name, _ in classes),
        indices=np.arange(kept, dtype=np.int64),
        source=str(root),
    )


def load_image_folder(
    directory: str | Path,
    *,
    size: int = 32,
    channels: int = 3,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_per_class: int | None = None,
    progress: ProgressCallback | None = None,
) -> DatasetSplits:
    """:func:`image_folder_dataset`, split stratified by ``seed``."""
    dataset = image_folder_dataset(
        directory,
        size=size,
        channels=channels,
        max_per_class=max_per_class,
        seed=seed,
        progress=progress,
    )
    return split_dataset(dataset, fractions=fractions, seed=seed)
