"""The serving stacks of examples/, each run the way its platform runs it, capturing
into a real S3 server: SageMaker's own inference toolkit (``sagemaker-inference``'s
Transformer, with TorchServe's request context, as SageMaker's PyTorch containers use
it), a FastAPI app under uvicorn, and a TorchServe handler through TorchServe's handler
interface (``ts.context.Context``; TorchServe's Java frontend is not started here)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from ladis_core import trials
from ladis_core.devtools.ports import find_free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NAMES = tuple(f"digit {i}" for i in range(10))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
    return buffer.getvalue()


def _import_example(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    from ladis_core.model.data import digits_dataset

    return digits_dataset(size=16).images[:64]


@pytest.fixture
def model_dir(tmp_path: Path, images: np.ndarray, s3_bucket: str) -> dict:
    """weights.pt of the example model (seeded random weights) and its reference trial."""
    import torch

    from ladis_core.capture import capture_reference
    from ladis_core.trials import Preprocessing

    build = _import_example(EXAMPLES / "mymodel.py", "_example_mymodel").build
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build().eval()
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "weights.pt")
    reference = f"{s3_bucket}trials/my-model/reference"
    capture_reference(
        model,
        [torch.from_numpy(images[:32]), torch.from_numpy(images[32:])],
        reference,
        preprocessing=Preprocessing(image_size=(16, 16)),
        class_names=NAMES,
    )
    return {"dir": folder, "reference": reference, "model": model, "bucket": s3_bucket}


def _context(model_dir: Path, headers: dict[str, str]):
    import ts
    from ts.context import Context, RequestProcessor
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    metrics = MetricsCacheYamlImpl(str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
    metrics.initialize_cache()
    context = Context("my-model", str(model_dir), {}, 1, None, "0.12.0", metrics=metrics)
    context.request_processor = [RequestProcessor(headers)]
    return context


def _expected(model, images: np.ndarray) -> list[int]:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(images)).argmax(dim=1).tolist()


def test_sagemaker_inference_script_under_the_inference_toolkit(model_dir, images, monkeypatch):
    from sagemaker_inference.transformer import Transformer

    code = model_dir["dir"] / "code"
    code.mkdir()
    shutil.copy(EXAMPLES / "sagemaker" / "code" / "inference.py", code / "inference.py")
    shutil.copy(EXAMPLES / "mymodel.py", code / "mymodel.py")
    inference = f"{model_dir['bucket']}trials/my-model/inference"
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "inference.py")
    monkeypatch.setenv("LADIS_REFERENCE_URI", model_dir["reference"])
    monkeypatch.setenv("LADIS_CAPTURE_URI", inference)
    for name in ("inference", "mymodel"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    transformer = Transformer()
    context = _context(
        model_dir["dir"], {"Content-Type": "application/x-npy", "Accept": "application/json"}
    )
    answers = []
    for image in images[:6]:
        (body,) = transformer.transform([{"body": _npy(image)}], context)
        answers.append(__import__("json").loads(body))
    assert [a["predictions"][0]["predicted_class"] for a in answers] == _expected(
        model_dir["model"], images[:6]
    )
    assert [a["step"] for a in answers] == list(range(6))
    assert answers[0]["predictions"][0]["class_name"].startswith("digit ")
    # a bad body is the toolkit's 400, and is not captured
    bad = _context(model_dir["dir"], {"Content-Type": "application/x-npy"})
    transformer.transform([{"body": b"not an array"}], bad)
    assert bad.request_processor[0].get_response_status_code() == 400
    transformer._model.close()

    data = trials.load_trial(inference, mode="PREDICT", include_inputs=True)
    assert list(data.layers) == ["pool_output_0"] and len(data) == 6
    np.testing.assert_allclose(data.inputs, images[:6], atol=1e-6)


def test_fastapi_app_under_uvicorn_captures_every_request(model_dir, images, tmp_path):
    source = (EXAMPLES / "fastapi_app.py").read_text()
    assert 0 < sum("# LADIS" in line for line in source.splitlines()) <= 5
    inference = f"{model_dir['bucket']}trials/fastapi/inference"
    port = find_free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{EXAMPLES}{os.pathsep}{REPO}",
        "LADIS_CAPTURE_URI": inference,
        "MODEL_WEIGHTS": str(model_dir["dir"] / "weights.pt"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/predict"
    try:
        deadline = time.monotonic() + 90
        answers = []
        for batch in (images[:1], images[1:4], images[4:5]):
            while True:
                try:
                    request = urllib.request.Request(url, data=_npy(batch), method="POST")
                    with urllib.request.urlopen(request, timeout=10) as response:
                        answers.append(__import__("json").loads(response.read()))
                    break
                except urllib.error.URLError:
                    assert server.poll() is None and time.monotonic() < deadline, (
                        "uvicorn did not start"
                    )
                    time.sleep(0.5)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                urllib.request.Request(url, data=b"junk", method="POST"), timeout=10
            )
        assert refused.value.code == 400
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert server.returncode in (0, -signal.SIGTERM), server.stderr.read()  # type: ignore[union-attr]
    assert [a["step"] for a in answers] == [0, 1, 2]
    assert sum((a["classes"] for a in answers), []) == _expected(model_dir["model"], images[:5])
    data = trials.load_trial(inference, mode="PREDICT")  # published at shutdown
    assert data.step_count == 3 and len(data) == 5 and list(data.layers) == ["pool_output_0"]


def test_torchserve_handler_through_its_handler_interface(model_dir, images, monkeypatch):
    inference = f"{model_dir['bucket']}trials/torchserve/inference"
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("LADIS_REFERENCE_URI", model_dir["reference"])
    monkeypatch.setenv("LADIS_CAPTURE_URI", inference)
    monkeypatch.delitem(sys.modules, "mymodel", raising=False)
    handler = _import_example(EXAMPLES / "torchserve" / "handler.py", "_example_ts_handler")
    context = _context(model_dir["dir"], {"Content-Type": "application/x-npy"})
    answers = [handler.handle([{"body": _npy(image)}], context)[0] for image in images[:4]]
    assert [a["predictions"][0]["predicted_class"] for a in answers] == _expected(
        model_dir["model"], images[:4]
    )
    assert [a["step"] for a in answers] == [0, 1, 2, 3]
    handler._service.close()
    data = trials.load_trial(inference, mode="PREDICT")
    assert data.step_count == 4 and list(data.layers) == ["pool_output_0"]
    meta = trials.trial_meta(inference)
    assert meta is not None and meta.class_names == NAMES
