"""``python -m ladis_core capture-reference``: every bad input is one line on stderr,
exit code 2, and nothing written; good input gives a trial, its ladis.json and a summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ladis_core import cli, trials

MODEL = """
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        return self.out(self.squeeze(self.body(x)).flatten(1))


def build():
    return Tiny()


def other():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 8), nn.ReLU(), nn.Linear(8, 3))


def not_a_model():
    return "a string"


def crashes():
    raise RuntimeError("no GPU here")
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tinymodels.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "tinymodels", raising=False)
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "owl"):
        folder = tmp_path / "images" / name
        folder.mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    import importlib

    module = importlib.import_module("tinymodels")
    torch.save(module.build().state_dict(), tmp_path / "tiny.pt")
    return tmp_path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["capture-reference", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_folder_of_class_folders_becomes_a_reference(workdir: Path, capsys) -> None:
    (workdir / "names.txt").write_text("Cat\nDog\nOwl\n")
    code, out, err = _run(
        capsys,
        "--model",
        "tinymodels:build",
        "--weights",
        "tiny.pt",
        "--data",
        "images",
        "--out",
        "trial",
        "--mean",
        "0.5",
        "--std",
        "0.25",
        "--batch-size",
        "5",
        "--class-names",
        "names.txt",
        "--layers",
        "body",
    )
    assert code == 0, err
    assert "captured 12 images in 3 steps" in out
    assert "penultimate layer: squeeze_output_0" in out
    assert "body_output_0 (4, 12, 12)" in out and "classes: 3 (Cat, Dog, Owl)" in out
    meta = trials.trial_meta(str(workdir / "trial"))
    assert meta is not None and meta.class_names == ("Cat", "Dog", "Owl")
    assert meta.preprocessing.image_size == (12, 12) and meta.preprocessing.std == (0.25,)
    data = trials.load_trial(str(workdir / "trial"), mode="EVAL", include_inputs=True)
    assert list(data.layers) == ["squeeze_output_0"] and len(data) == 12
    assert data.inputs.min() >= 0.0 and data.inputs.max() <= 1.0  # pixels, not normalised
    # an existing trial is kept unless --overwrite
    code, _, err = _run(capsys, "--model", "tinymodels:build", "--data", "images", "--out", "trial")
    assert code == 2 and "already holds a trial" in err


def _bad_inputs(workdir: Path) -> list[tuple[list[str], str]]:
    (workdir / "empty").mkdir()
    (workdir / "broken" / "a").mkdir(parents=True)
    Image.new("RGB", (12, 12)).save(workdir / "broken" / "a" / "ok.png")
    (workdir / "broken" / "a" / "bad.png").write_bytes(b"not a png")
    (workdir / "mixed").mkdir()
    Image.new("RGB", (12, 12)).save(workdir / "mixed" / "a.png")
    Image.new("RGB", (10, 8)).save(workdir / "mixed" / "b.png")
    torch.save({"out.weight": torch.zeros(5, 4), "extra": torch.zeros(1)}, workdir / "wrong.pt")
    np.savez(workdir / "wrong.npz", pixels=np.zeros((2, 3, 8, 8)))
    (workdir / "two.txt").write_text("a\nb\n")
    data = ["--data", "images"]
    return [
        (["--model", "nosuchpackage.models:build", *data], "cannot import 'nosuchpackage.models'"),
        (["--model", "tinymodels:missing", *data], "has no 'missing'"),
        (["--model", "tinymodels:not_a_model", *data], "returned str, not a torch.nn.Module"),
        (["--model", "tinymodels:crashes", *data], "RuntimeError: no GPU here"),
        (["--model", "not a target", *data], "is not PKG.MODULE:CALLABLE"),
        (
            ["--model", "tinymodels:build", "--weights", "wrong.pt", *data],
            "missing keys: body.0.weight, body.0.bias, out.bias; unexpected keys: extra; "
            "other shapes: out.weight (5, 4) in the file, (3, 4) in the model",
        ),
        (["--model", "tinymodels:build", "--weights", "none.pt", *data], "none.pt: no such file"),
        (["--model", "tinymodels:build", "--data", "empty"], "no images found"),
        (["--model", "tinymodels:build", "--data", "broken"], "bad.png is not a readable image"),
        (
            ["--model", "tinymodels:build", "--data", "mixed"],
            "different sizes (a.png is 12×12, b.png is 8×10); give --image-size",
        ),
        (["--model", "tinymodels:build", "--data", "wrong.npz"], "holds no 'images' array"),
        (["--model", "tinymodels:build", "--data", "nowhere"], "no such folder or file"),
        (
            ["--model", "tinymodels:build", *data, "--penultimate", "avgpool"],
            "'avgpool' is not a module of Tiny",
        ),
        (
            ["--model", "tinymodels:build", *data, "--layers", "layer4"],
            "'layer4' matches no module of Tiny",
        ),
        (
            ["--model", "tinymodels:build", *data, "--class-names", "two.txt"],
            "2 class names for a model with 3 outputs",
        ),
        (
            ["--model", "tinymodels:build", *data, "--mean", "0.5", "0.5", "--std", "0.2", "0.2"],
            "--mean has 2 values; the images have 3 channels",
        ),
        (["--model", "tinymodels:build", *data, "--mean", "0.5"], "give --mean and --std together"),
        (
            ["--model", "tinymodels:build", *data, "--channels", "1"],
            "does not accept input of shape (N, 1, 12, 12)",
        ),
    ]


def test_bad_input_is_one_line_exit_2_and_nothing_written(workdir: Path, capsys) -> None:
    for args, fragment in _bad_inputs(workdir):
        code, out, err = _run(capsys, *args, "--out", str(workdir / "out"))
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2, (args, err)
        assert len(lines) == 1 and fragment in lines[0], (args, err)
        assert "Traceback" not in err
        assert not (workdir / "out").exists(), args  # nothing written


def test_help_names_every_option(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["capture-reference", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--model",
        "--weights",
        "--data",
        "--out",
        "--layers",
        "--penultimate",
        "--image-size",
        "--mean",
        "--std",
        "--batch-size",
        "--class-names",
    ):
        assert option in text


def test_serve_refuses_settings_it_cannot_honour(workdir: Path, capsys) -> None:
    code, _, err = _run(capsys, "--model", "tinymodels:build", "--data", "images", "--out", "ref")
    assert code == 0, err
    cases = [
        (["--model", "tinymodels:build"], "needs --reference TRIAL"),
        (
            ["--model", "tinymodels:other", "--reference", "ref"],
            "penultimate layer is 2_output_0, the reference's squeeze_output_0",
        ),
        (["--model", "tinymodels:build", "--reference", "images"], "records no preprocessing"),
        (
            ["--model", str(workdir), "--weights", "tiny.pt"],
            "--weights apply to --model PKG.MODULE:CALLABLE",
        ),
    ]
    for args, fragment in cases:
        code = cli.main(["serve", *args, "--port", "0", "--capture", str(workdir / "inference")])
        err = capsys.readouterr().err
        assert code == 2 and fragment in err, (args, err)
        assert not (workdir / "inference").exists(), args
