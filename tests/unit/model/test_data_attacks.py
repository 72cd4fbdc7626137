"""Data sets, training and attacks of the demo world.

The attacks are checked against the Adversarial Robustness Toolbox (the library the
original LADIS work used): without a random start PGD and FGSM are deterministic, so
both implementations must give the same adversarial images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ladis_core.errors import InputError
from ladis_core.model.attacks import attack, fgsm, pgd
from ladis_core.model.data import (
    ImageDataset,
    load_digits,
    load_image_folder,
    resize_images,
    stratified_split,
)
from ladis_core.model.spec import ModelSpec
from ladis_core.model.training import TrainingOptions, accuracy, predict, seeded_model, train_model

SIZE = 16  # small images keep the tests quick; the demo uses 32


@pytest.fixture(scope="module")
def digits() -> object:
    return load_digits(size=SIZE, seed=3)


@pytest.fixture(scope="module")
def trained(digits):
    spec = ModelSpec(
        architecture="resnet18", input_shape=(3, SIZE, SIZE), class_names=list(digits.class_names)
    )
    model = seeded_model(spec, seed=0)
    result = train_model(
        model,
        digits.train,
        validation=digits.validation,
        options=TrainingOptions(epochs=3, batch_size=64, learning_rate=0.02, seed=0),
    )
    return model, result


# --------------------------------------------------------------------------- data


def test_digits_are_scaled_upscaled_and_split_by_class(digits) -> None:
    for part in (digits.train, digits.validation, digits.test):
        assert part.images.dtype == np.float32 and part.images.shape[1:] == (3, SIZE, SIZE)
        assert part.labels.dtype == np.int64
        assert part.images.min() >= 0.0 and part.images.max() <= 1.0
        # every class in every part, in roughly the 50/25/25 shares
        assert (part.class_counts() > 0).all()
    assert digits.class_names == tuple(str(i) for i in range(10))
    total = len(digits.train) + len(digits.validation) + len(digits.test)
    assert total == 1797
    assert abs(len(digits.validation) - 1797 / 4) < 15
    ids = [set(p.indices.tolist()) for p in (digits.train, digits.validation, digits.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    # the three channels are the same grey image
    assert np.array_equal(digits.test.images[:, 0], digits.test.images[:, 2])
    # the brightest pixels of the 0..16 scale reach (nearly) 1 after bilinear upscaling
    assert digits.train.images.max() > 0.95


def test_split_is_fixed_by_the_seed(digits) -> None:
    again = load_digits(size=SIZE, seed=3)
    other = load_digits(size=SIZE, seed=4)
    assert np.array_equal(again.test.indices, digits.test.indices)
    assert np.array_equal(again.test.images, digits.test.images)
    assert not np.array_equal(other.test.indices, digits.test.indices)


def test_stratified_split_keeps_every_class_in_every_part() -> None:
    labels = np.array([0] * 3 + [1] * 10 + [2] * 40)
    train, val, test = stratified_split(labels, fractions=(0.6, 0.2, 0.2), seed=0)
    for part in (train, val, test):
        assert set(labels[part]) == {0, 1, 2}
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(labels)))
    with pytest.raises(InputError, match="fractions"):
        stratified_split(labels, fractions=(0.5, 0.5, 0.5))


def test_resize_turns_grey_into_rgb_and_keeps_range() -> None:
    grey = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    out = resize_images(grey, size=20, channels=3)
    assert out.shape == (2, 3, 20, 20) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.allclose(out.mean(axis=(2, 3))[:, 0], grey.mean(axis=(2, 3))[:, 0], atol=0.05)


def _write_folder(root: Path) -> Path:
    """Three classes of small PNG/JPEG files, nested, in mixed sizes and modes."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog", "fox"]):
        folder = root / name / ("images" if c == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(8):
            pixels = (rng.random((12 + i, 10 + c, 3)) * 60 + 80 * c).astype(np.uint8)
            img = Image.fromarray(pixels)
            if i % 3 == 0:
                img = img.convert("L")
            img.save(folder / f"{i:03d}.{'jpg' if i == 7 else 'png'}")
        (root / name / "notes.txt").write_text("not an image")
    (root / "dog" / "broken.png").write_bytes(b"not a png at all")
    (root / "empty").mkdir()
    return root


def test_image_folder_loads_classes_resized(tmp_path: Path) -> None:
    root = _write_folder(tmp_path / "pets")
    splits = load_image_folder(root, size=24, seed=1, fractions=(0.5, 0.25, 0.25))
    assert splits.class_names == ("cat", "dog", "fox")  # the empty folder is no class
    everything = np.concatenate([splits.train.labels, splits.validation.labels, splits.test.labels])
    assert np.bincount(everything).tolist() == [8, 8, 8]  # the broken file was skipped
    for part in (splits.train, splits.validation, splits.test):
        assert part.images.shape[1:] == (3, 24, 24) and part.images.dtype == np.float32
        assert part.images.min() >= 0.0 and part.images.max() <= 1.0
    # the classes differ in brightness as they were drawn
    train = splits.train
    means = [train.images[train.labels == c].mean() for c in range(3)]
    assert means[0] < means[1] < means[2]
    capped = load_image_folder(root, size=8, channels=1, max_per_class=4, seed=1)
    assert capped.train.images.shape[1:] == (1, 8, 8)
    assert len(capped.train) + len(capped.validation) + len(capped.test) == 12


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such folder"),
        (lambda p: (p / "flat").mkdir() or (p / "flat"), "no images found"),
        (lambda p: _single_class(p), "at least two"),
    ],
)
def test_image_folder_errors_name_the_folder(tmp_path: Path, make, message: str) -> None:
    folder = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        load_image_folder(folder)
    assert str(folder) in str(info.value)


def _single_class(root: Path) -> Path:
    (root / "one" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(root / "one" / "a" / "x.png")
    return root


def test_dataset_checks_its_shapes() -> None:
    with pytest.raises(InputError, match="labels"):
        ImageDataset(
            np.zeros((3, 1, 2, 2), np.float32), np.zeros(2, np.int64), ("a",), np.arange(3)
        )


# --------------------------------------------------------------------------- training


def test_training_learns_digits_and_is_reproducible(digits, trained) -> None:
    model, result = trained
    assert result.epochs == 3 and len(result.losses) == 3
    assert result.losses[-1] < result.losses[0]
    assert result.validation_accuracy is not None and result.validation_accuracy > 85.0
    assert accuracy(model, digits.test) > 85.0
    assert not model.training
    # same seed, same initial weights; the global generator is untouched
    state = torch.random.get_rng_state()
    spec = ModelSpec(architecture="resnet18", input_shape=(3, SIZE, SIZE))
    a, b = seeded_model(spec, seed=5), seeded_model(spec, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_training_rejects_a_missing_gpu_or_bad_options(digits) -> None:
    model = seeded_model(ModelSpec(architecture="resnet18", input_shape=(3, SIZE, SIZE)), seed=0)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            train_model(model, digits.train, device="cuda")
    with pytest.raises(InputError, match="epochs"):
        TrainingOptions(epochs=0)


# --------------------------------------------------------------------------- attacks


def _art_classifier(model, input_shape):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def _agreement(ours: np.ndarray, theirs: np.ndarray, epsilon: float) -> float:
    """Share of pixels equal up to float rounding (sign(∇) may flip where ∇ ≈ 0)."""
    return float(np.mean(np.abs(ours - theirs) <= 1e-6 + 1e-3 * epsilon))


def test_pgd_and_fgsm_match_the_adversarial_robustness_toolbox(digits, trained) -> None:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    model, _ = trained
    x, y = digits.test.images[:48], digits.test.labels[:48]
    classifier = _art_classifier(model, x.shape[1:])
    eps, steps, alpha = 8 / 255, 7, 2 / 255

    theirs = ProjectedGradientDescent(
        classifier,
        norm=np.inf,
        eps=eps,
        eps_step=alpha,
        max_iter=steps,
        num_random_init=0,
        batch_size=16,
        verbose=False,
    ).generate(x, y=y)
    ours = pgd(
        model, x, y, epsilon=eps, steps=steps, step_size=alpha, random_start=False, batch_size=16
    )
    assert _agreement(ours.images, theirs, eps) > 0.999
    assert np.mean(ours.predictions == classifier.predict(theirs).argmax(1)) > 0.97

    theirs = FastGradientMethod(classifier, norm=np.inf, eps=eps, batch_size=16).generate(x, y=y)
    ours = fgsm(model, x, y, epsilon=eps)
    assert _agreement(ours.images, theirs, eps) > 0.999


def test_pgd_stays_in_the_ball_and_grows_with_epsilon(digits, trained) -> None:
    model, _ = trained
    x, y = digits.test.images[:64], digits.test.labels[:64]
    rates = []
    for eps in (0.0, 4 / 255, 16 / 255, 48 / 255):
        result = pgd(model, x, y, epsilon=eps, steps=5, seed=1, batch_size=40)
        assert result.images.dtype == np.float32 and result.images.shape == x.shape
        assert np.abs(result.images - x).max() <= eps + 1e-6
        assert result.images.min() >= 0.0 and result.images.max() <= 1.0
        assert np.array_equal(result.predictions, predict(model, result.images))
        rates.append(result.success_rate)
    assert rates[0] == 0.0
    assert rates == sorted(rates) and rates[-1] > 80.0
    # PGD is at least as strong as FGSM at the same budget
    eps = 16 / 255
    assert (
        pgd(model, x, y, epsilon=eps, seed=1).success_rate
        >= fgsm(model, x, y, epsilon=eps).success_rate
    )


def test_random_start_is_seeded_without_global_state(digits, trained) -> None:
    model, _ = trained
    model.zero_grad(set_to_none=True)  # ART's loss_gradient leaves parameter gradients behind
    x, y = digits.test.images[:20], digits.test.labels[:20]
    state = torch.random.get_rng_state()
    a = pgd(model, x, y, epsilon=8 / 255, steps=2, seed=7, batch_size=8)
    b = pgd(model, x, y, epsilon=8 / 255, steps=2, seed=7, batch_size=8)
    c = pgd(model, x, y, epsilon=8 / 255, steps=2, seed=8, batch_size=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert a.summary()["seed"] == 7 and a.summary()["attack"] == "pgd"
    # the model is left as it was: eval mode, parameters still trainable, no stray gradients
    assert not model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_attack_rejects_bad_arguments(digits, trained) -> None:
    model, _ = trained
    x, y = digits.test.images[:4], digits.test.labels[:4]
    with pytest.raises(InputError, match="epsilon"):
        attack(model, x, y, epsilon=2.0)
    with pytest.raises(InputError, match="method"):
        attack(model, x, y, method="cw", epsilon=0.1)
    with pytest.raises(InputError, match="labels"):
        attack(model, x, y[:3], epsilon=0.1)
    with pytest.raises(InputError, match="NaN"):
        attack(model, np.full_like(x, np.nan), y, epsilon=0.1)
