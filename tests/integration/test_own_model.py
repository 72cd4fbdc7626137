"""Monitor your own model, end to end, with the README's commands.

A small custom CNN (modules ``features``, ``pool``, ``head``: no ``avgpool``) is trained on
the digits, its reference captured with ``capture-reference`` from a folder of PNGs, it
is served with ``serve --model pkg:callable``, natural and then PGD traffic goes through
HTTP, and ``monitor`` (without ``--layers``) sees a quiet window and an incident. The
commands are read from README.md ("Monitor your own model"), so the document cannot
drift from the code. The same world (no world.json, natural.npz or model.json) then
gives an incident report with nearest-neighbour originals and the recorded class names.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ladis_core import store
from ladis_core.serving import invoke
from ladis_core.store import layout

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
#: class folders sort like the model's outputs (ImageFolder labels are the sorted names)
NAMES = tuple(
    f"{i}-{n}"
    for i, n in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    )
)
T1, T2 = "2026-11-23T17:00:00Z", "2026-11-23T18:00:00Z"
REQUESTS = 120

MODEL_SOURCE = '''
"""A small digits classifier with none of torchvision's module names."""
from torch import nn


class DigitsCNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def build() -> nn.Module:
    return DigitsCNN()
'''


@dataclass(frozen=True)
class OwnModel:
    root: Path  # holds mymodels/, digits_cnn.pt and validation/
    traffic: np.ndarray  # (2·REQUESTS, 3, 16, 16) natural test digits
    labels: np.ndarray
    model: object  # the trained model behind its preprocessing, for the attack
    accuracy: float


def readme_commands() -> list[str]:
    """The shell commands of the README's "Monitor your own model" block, one per entry
    (continuation lines joined)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- own-model:start.*?```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its 'Monitor your own model' command block"
    joined = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def _command(commands: list[str], word: str, bucket: str) -> list[str]:
    line = next(c for c in commands if c.startswith(f"python -m ladis_core {word} "))
    line = line.replace("s3://ladis/", bucket).replace("--port 8080", "--port 0")
    return [sys.executable, *shlex.split(line)[1:]]


@pytest.fixture(scope="module")
def own_model(tmp_path_factory: pytest.TempPathFactory) -> OwnModel:
    import torch
    from PIL import Image

    from ladis_core.model.data import load_digits
    from ladis_core.model.imported import with_preprocessing
    from ladis_core.model.training import TrainingOptions, accuracy, train_model
    from ladis_core.trials import Preprocessing

    root = tmp_path_factory.mktemp("own-model")
    (root / "mymodels").mkdir()
    (root / "mymodels" / "__init__.py").write_text("")
    (root / "mymodels" / "digits_cnn.py").write_text(MODEL_SOURCE)
    spec = importlib.util.spec_from_file_location(
        "_own_digits_cnn", root / "mymodels" / "digits_cnn.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]

    splits = load_digits(size=16, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = module.build()
    model = with_preprocessing(net, Preprocessing(mean=(0.5,), std=(0.5,)))
    train_model(
        model,
        splits.train,
        options=TrainingOptions(epochs=12, batch_size=32, learning_rate=0.05, seed=0),
    )
    torch.save(net.state_dict(), root / "digits_cnn.pt")
    for row, (image, label) in enumerate(
        zip(splits.validation.images, splits.validation.labels, strict=True)
    ):
        folder = root / "validation" / NAMES[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image.transpose(1, 2, 0) * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{row:04d}.png")
    # a random draw: sklearn's digits are ordered by writer, so a slice is another population
    test = splits.test.subset(
        np.random.default_rng(0).permutation(len(splits.test))[: 2 * REQUESTS]
    )
    return OwnModel(
        root=root,
        traffic=test.images,
        labels=test.labels,
        model=model,
        accuracy=accuracy(model, splits.test),
    )


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{REPO}"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _published(url: str) -> int:
    with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
        return int(json.loads(response.read())["capture"]["steps_published"])


def _wait_published(url: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while _published(url) < count:
        assert time.monotonic() < deadline, (
            f"the endpoint published {_published(url)} of {count} steps"
        )
        time.sleep(0.5)


def _job(bucket: str, job_id: str) -> dict:
    return store.read_json(layout.results_uri(layout.monitoring_uri(bucket, "my-model"), job_id))


def test_your_own_model_with_the_readme_commands(own_model: OwnModel, s3_bucket: str) -> None:
    from ladis_core.model.attacks import attack

    assert own_model.accuracy > 85, own_model.accuracy
    commands = readme_commands()
    root = own_model.root

    captured = _run(_command(commands, "capture-reference", s3_bucket), root)
    assert captured.returncode == 0, captured.stderr
    assert "penultimate layer: pool_output_0" in captured.stdout
    assert "classes: 10 (0-zero, 1-one, 2-two" in captured.stdout
    assert re.search(r"accuracy on the labelled images: (8[5-9]|9\d)", captured.stdout)

    serve = _command(commands, "serve", s3_bucket)
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{REPO}"}
    server = subprocess.Popen(
        serve, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"listening on (http://\S+)", line)
        assert match, line + server.stderr.read()  # type: ignore[union-attr]
        url = match.group(1)
        natural = own_model.traffic[:REQUESTS]
        answers = [invoke(url, image) for image in natural]
        agree = np.mean(
            [
                a["predictions"][0]["class_name"] == NAMES[int(y)]
                for a, y in zip(answers, own_model.labels, strict=False)
            ]
        )
        assert agree > 0.85  # served with the recorded preprocessing and class names
        _wait_published(url, REQUESTS)
        quiet = _run([*_command(commands, "monitor", s3_bucket), "--at", T1], root)
        assert quiet.returncode == 0, quiet.stderr

        crafted = attack(
            own_model.model,  # type: ignore[arg-type]
            own_model.traffic[REQUESTS:],
            own_model.labels[REQUESTS:],
            method="pgd",
            epsilon=8 / 255,
            steps=10,
            seed=0,
        )
        for image in crafted.images:
            invoke(url, image)
        _wait_published(url, 2 * REQUESTS)
        loud = _run([*_command(commands, "monitor", s3_bucket), "--at", T2], root)
        assert loud.returncode == 0, loud.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0, server.stderr.read()  # type: ignore[union-attr]

    first, second = _job(s3_bucket, "2026-11-23T17-00-00Z"), _job(s3_bucket, "2026-11-23T18-00-00Z")
    assert list(first["layers"]) == list(second["layers"]) == ["pool_output_0"]
    assert first["requests"] == second["requests"] == REQUESTS
    assert not first["incident"], first["detection_rate"]
    assert second["incident"], (second["detection_rate"], crafted.success_rate)
    assert first["class_names"]["0"] == "0-zero"
    print(
        f"own model: test accuracy {own_model.accuracy:.1f}%, PGD ε=8/255 success "
        f"{crafted.success_rate:.1f}%; detection rate natural {first['detection_rate']:.1f}% "
        f"(baseline {first['baseline_detection_rate']:.1f}%), PGD {second['detection_rate']:.1f}%"
    )

    # no demo artefacts in this world: the report finds originals in the reference
    assert not store.exists(layout.dataset_uri(s3_bucket, "my-model"))
    report = _command(commands, "report", s3_bucket)
    out = root / "incidents.html"
    report[report.index("--out") + 1] = str(out)
    made = _run(report, root)
    assert made.returncode == 0, made.stderr
    html = out.read_text(encoding="utf-8")
    assert "nearest" in html.lower() and "data:image/png;base64" in html
    assert re.search(r"\d-(zero|one|two|three|four|five|six|seven|eight|nine)", html)

    # the dashboard finds the endpoint by its monitoring folder and shows the flagged inputs
    from tests.support.dashboard import all_text, open_app

    os.environ["LADIS_S3_URI"] = s3_bucket  # s3_bucket's monkeypatch restores it
    at = open_app()
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="shared.endpoint").value == "my-model"
    at.selectbox(key="history.pick").set_value("2026-11-23T18-00-00Z").run()
    at.switch_page("../pages/flagged.py").run()
    assert not at.exception, [e.message for e in at.exception]
    text = all_text(at)
    # originals are the nearest natural images of the reference, with the perturbation size
    assert "#1 · step" in text and "reference row" in text and "L∞" in text
    assert "Predicted class: **" in text and "-" in text.split("Predicted class: **", 1)[1][:12]
