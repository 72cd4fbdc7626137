"""The serving endpoint over real HTTP: a real model, a real server on a free loopback
port, real captures (smdebug, PREDICT mode) and the SageMaker contract functions."""

from __future__ import annotations

import http.client
import importlib.util
import inspect
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ladis_core import serving, store
from ladis_core.errors import InputError
from ladis_core.model.spec import ModelSpec, build_model, load_model, save_model
from ladis_core.serving import (
    PROVENANCE_HEADER,
    InvocationError,
    invoke,
    ping,
    start_server,
)
from tests.support.factories import capture_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HAS_CAPTURE = importlib.util.find_spec("ladis_core.capture") is not None
needs_capture = pytest.mark.skipif(not HAS_CAPTURE, reason="ladis_core/capture.py is not there yet")
CLASS_NAMES = [f"digit {i}" for i in range(10)]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ModelSpec(class_names=CLASS_NAMES)
    return save_model(build_model(spec), spec, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def reference_model(model_dir: Path) -> torch.nn.Module:
    return load_model(model_dir)[0]


@pytest.fixture(scope="module")
def server(model_dir: Path):
    """One capture-less server for the protocol tests (small body limit for 413)."""
    with start_server(model_dir, max_body_bytes=200_000) as running:
        yield running


def _images(n: int, *, seed: int, shape=(3, 32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def _post(url: str, body: bytes, content_type: str | None, headers: dict | None = None):
    """POST with urllib; returns (status, parsed JSON body)."""
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    request = urllib.request.Request(
        url + "/invocations", data=body, headers=all_headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _encode(pixels_hwc: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels_hwc.squeeze()).save(buffer, format=fmt)
    return buffer.getvalue()


def _expected_probabilities(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(images)), dim=1).numpy()


# --------------------------------------------------------------------------- protocol


def test_ping_and_npy_invocation_match_the_model(server, reference_model) -> None:
    assert ping(server.url)
    image = _images(1, seed=1)[0]
    answer = invoke(server.url, image)
    assert answer["step"] is None  # no capture on this server
    (prediction,) = answer["predictions"]
    probabilities = np.array(prediction["probabilities"])
    expected = _expected_probabilities(reference_model, image[None])[0]
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert prediction["predicted_class"] == int(expected.argmax())
    assert prediction["class_name"] == CLASS_NAMES[prediction["predicted_class"]]


def test_uint8_batches_are_scaled_and_grey_small_images_conformed(server, reference_model) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, size=(5, 1, 8, 8), dtype=np.uint8)
    answer = invoke(server.url, pixels)
    assert len(answer["predictions"]) == 5
    conformed = serving.conform_images(pixels.astype(np.float32) / 255, (3, 32, 32))
    assert conformed.shape == (5, 3, 32, 32)
    expected = _expected_probabilities(reference_model, conformed)
    got = np.array([p["probabilities"] for p in answer["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_png_equals_the_same_pixels_as_npy_and_jpeg_is_accepted(server) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    status, from_png = _post(server.url, _encode(pixels, "PNG"), "image/png")
    assert status == 200
    from_npy = invoke(server.url, pixels.transpose(2, 0, 1).copy())
    np.testing.assert_allclose(
        from_png["predictions"][0]["probabilities"],
        from_npy["predictions"][0]["probabilities"],
        atol=1e-6,
    )
    grey = np.random.default_rng(4).integers(0, 256, size=(12, 20), dtype=np.uint8)
    status, from_jpeg = _post(server.url, _encode(grey, "JPEG"), "image/jpeg; charset=binary")
    assert status == 200 and len(from_jpeg["predictions"]) == 1
    status, from_json = _post(
        server.url,
        json.dumps({"instances": pixels.transpose(2, 0, 1).tolist()}).encode(),
        "application/json",
    )
    assert status == 200
    np.testing.assert_allclose(
        from_json["predictions"][0]["probabilities"],
        from_npy["predictions"][0]["probabilities"],
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"not an array", "application/x-npy", 400, "not a valid .npy"),
        (_npy(np.zeros((32, 32, 3), np.float32)), "application/x-npy", 400, "channel-last"),
        (_npy(np.full((3, 8, 8), 2.0, np.float32)), "application/x-npy", 400, "[0, 1]"),
        (_npy(np.full((3, 8, 8), np.nan, np.float32)), "application/x-npy", 400, "NaN"),
        (_npy(np.zeros((2, 2), np.float32)), "application/x-npy", 400, "(C, H, W)"),
        (b"\x89PNG\r\n\x1a\nbroken", "image/png", 400, "PNG"),
        (b"[[1, 2], [3]]", "application/json", 400, "JSON"),
        (b"", "application/x-npy", 400, "empty"),
        (b"hello", "text/plain", 415, "text/plain"),
        (b"hello", None, 415, "Content-Type"),
    ],
)
def test_bad_payloads_get_a_json_4xx(server, body, content_type, status, fragment) -> None:
    got_status, answer = _post(server.url, body, content_type)
    assert got_status == status
    assert fragment in answer["message"]
    assert "Traceback" not in answer["message"]


def test_unmet_accept_gets_406(server) -> None:
    status, answer = _post(
        server.url, _npy(_images(1, seed=5)), "application/x-npy", {"Accept": "text/csv"}
    )
    assert status == 406 and "application/json" in answer["message"]
    status, _ = _post(
        server.url, _npy(_images(1, seed=5)), "application/x-npy", {"Accept": "text/csv, */*;q=0.1"}
    )
    assert status == 200


def test_forged_npy_header_is_refused_without_allocating(server) -> None:
    body = bytearray(_npy(np.zeros((1, 3, 4, 4), np.float32)))
    header_end = body.index(b"\n") + 1
    forged = body[:header_end].replace(b"(1, 3, 4, 4)", b"(99999, 3, 99999, 9)")
    got_status, answer = _post(server.url, bytes(forged) + body[header_end:], "application/x-npy")
    assert got_status == 400 and "truncated or corrupt" in answer["message"]


def test_bad_provenance_header_is_refused(server) -> None:
    body = _npy(_images(1, seed=5))
    for header, fragment in [
        ("{not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"source_index": "7"}', "source_index"),
        ('{"epsilon": NaN}', "finite"),
    ]:
        status, answer = _post(server.url, body, "application/x-npy", {PROVENANCE_HEADER: header})
        assert status == 400 and fragment in answer["message"]


def test_oversized_body_is_refused_before_it_is_read(server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        # announce 50 MB but send nothing: the answer must come from the header alone
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "application/x-npy")
        connection.putheader("Content-Length", str(50 * 1024 * 1024))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert "at most 200000" in json.loads(response.read())["message"]
    finally:
        connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:  # curl's way: ask before sending a big body
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Length", str(10 * 1024 * 1024))
        connection.putheader("Expect", "100-continue")
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    status, _ = _post(server.url, _npy(_images(20, seed=6)), "application/x-npy")  # 245 kB
    assert status == 413
    with pytest.raises(InvocationError, match="413") as caught:
        invoke(server.url, _images(20, seed=6))
    assert caught.value.status == 413


def test_unknown_paths_and_methods(server) -> None:
    for method, path, status in [
        ("GET", "/nope", 404),
        ("POST", "/ping", 405),
        ("GET", "/invocations", 405),
        ("PATCH", "/ping", 501),
    ]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request(method, path, body=b"" if method != "GET" else None)
            response = connection.getresponse()
            assert response.status == status, (method, path)
            assert "message" in json.loads(response.read())
        finally:
            connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:  # no Content-Length at all
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "application/x-npy")
        connection.endheaders()
        assert connection.getresponse().status == 411
    finally:
        connection.close()
    assert ping(server.url)


def test_keep_alive_connection_serves_many_requests(server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for seed in range(3):
            connection.request(
                "POST",
                "/invocations",
                body=_npy(_images(1, seed=seed)),
                headers={"Content-Type": "application/x-npy"},
            )
            response = connection.getresponse()
            assert response.status == 200
            assert len(json.loads(response.read())["predictions"]) == 1
    finally:
        connection.close()


def test_unexpected_failures_answer_a_generic_500_and_the_server_lives_on(model_dir) -> None:
    # a model whose forward pass fails (its weights do not fit the declared input)
    broken = serving.ServedModel(torch.nn.Linear(5, 2), ModelSpec(), device="cpu")
    with start_server(broken) as running:
        for _ in range(2):
            status, answer = _post(running.url, _npy(_images(1, seed=7)), "application/x-npy")
            assert status == 500
            assert answer == {
                "error": "internal_error",
                "message": "internal error while handling the request; see the server log",
            }
        assert ping(running.url)


def test_unreachable_endpoint_raises_a_clear_error() -> None:
    from ladis_core.devtools.s3server import find_free_port

    with pytest.raises(InvocationError, match="cannot reach"):
        invoke(f"http://127.0.0.1:{find_free_port()}", _images(1, seed=0), timeout=2)
    assert not ping(f"http://127.0.0.1:{find_free_port()}", timeout=2)


def test_stopped_server_refuses_connections(model_dir) -> None:
    running = start_server(model_dir)
    url = running.url
    assert ping(url)
    running.stop()
    running.stop()  # idempotent
    assert not ping(url, timeout=2)
    assert running.served.closed


def test_model_archive_is_unpacked(model_dir, tmp_path) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("model.pt", "model.json"):
            tar.add(model_dir / name, arcname=name)
    with start_server(str(archive), cache_dir=tmp_path / "cache") as running:
        assert ping(running.url)
    with pytest.raises(InputError, match="not a readable model archive"):
        (tmp_path / "bad.tar.gz").write_bytes(b"nope")
        start_server(str(tmp_path / "bad.tar.gz"), cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- SageMaker contract


def test_sagemaker_contract_functions(model_dir, reference_model, monkeypatch, tmp_path) -> None:
    capture_uri = str(tmp_path / "inference")
    if HAS_CAPTURE:  # on SageMaker, capture is switched on by the environment
        monkeypatch.setenv(serving.CAPTURE_URI_ENV, capture_uri)
    else:
        monkeypatch.delenv(serving.CAPTURE_URI_ENV, raising=False)
    monkeypatch.setenv(serving.DEVICE_ENV, "cpu")
    # the toolkit passes its context when a function has one more parameter than usual
    arity = {
        name: len(inspect.signature(getattr(serving, name)).parameters)
        for name in ("model_fn", "input_fn", "predict_fn", "output_fn")
    }
    assert arity == {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2}
    assert not hasattr(serving, "transform_fn")  # the toolkit refuses both styles at once

    model = serving.model_fn(str(model_dir))
    images = _images(2, seed=8)
    data = serving.input_fn(_npy(images), "application/x-npy")
    assert data.shape == (2, 3, 32, 32) and data.dtype == np.float32
    prediction = serving.predict_fn(data, model)
    body, content_type = serving.output_fn(prediction, "application/json")
    assert content_type == "application/json"
    answer = json.loads(body)
    np.testing.assert_allclose(
        [p["probabilities"] for p in answer["predictions"]],
        _expected_probabilities(reference_model, images),
        atol=1e-5,
    )
    # the toolkit hands JSON bodies over as str
    assert serving.input_fn(json.dumps(images.tolist()), "application/json").shape == (2, 3, 32, 32)
    # under SageMaker's toolkit (installed for the tests) client errors become its own
    # errors with the status, so its server answers 415/406 instead of 500
    from sagemaker_inference.errors import GenericInferenceToolkitError

    with pytest.raises(GenericInferenceToolkitError) as refused:
        serving.input_fn(b"x", "text/csv")
    assert refused.value.status_code == 415
    assert isinstance(refused.value.__cause__, serving.UnsupportedContentTypeError)
    with pytest.raises(GenericInferenceToolkitError) as refused:
        serving.output_fn(prediction, "text/csv")
    assert refused.value.status_code == 406
    model.close()
    if HAS_CAPTURE:
        from ladis_core.trials import load_trial

        trial = load_trial(capture_uri, mode="PREDICT")
        assert trial.steps.tolist() == [answer["step"]] * 2
    else:
        assert answer["step"] is None


def test_importing_the_serving_module_is_light() -> None:
    code = "import sys, ladis_core.serving; print(sorted(m for m in ('torch', 'smdebug', 'numpy', 'PIL') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- CLI


def test_serve_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ladis_core", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 0
    for option in (
        "--model",
        "--capture",
        "--port",
        "--host",
        "--device",
        "--max-body-mb",
        "--provenance",
    ):
        assert option in out.stdout


def test_serve_reports_a_missing_model(tmp_path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ladis_core",
            "serve",
            "--model",
            str(tmp_path / "none"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: model folder")


# --------------------------------------------------------------------------- provenance and S3


def _read_provenance(uri: str) -> list[dict]:
    records = []
    for info in store.list_objects(uri):
        text = store.read_bytes(info.uri).decode()
        records.extend(json.loads(line) for line in text.splitlines() if line)
    return records


@pytest.mark.parametrize("where", ["local", "s3"])
def test_provenance_is_written_in_parts_and_flushed_on_close(where, tmp_path, request) -> None:
    from ladis_core.serving import ProvenanceRecorder

    uri = (
        str(tmp_path / "provenance")
        if where == "local"
        else request.getfixturevalue("s3_bucket") + "trials/x/provenance"
    )
    recorder = ProvenanceRecorder(uri, every=5)
    for step in range(12):
        recorder.add(step, {"source_index": 100 + step, "attack": "none", "step": -1})
    # written by the recorder's thread, never by add() (the request path does no I/O)
    wait_until(lambda: recorder.written == 10, what="two full parts")
    parts = store.list_objects(uri)
    assert len(parts) == 2 and recorder.pending == 2  # two full parts, two lines buffered
    recorder.close()
    parts = store.list_objects(uri)
    assert len(parts) == 3 and recorder.written == 12
    assert all(Path(p.uri).name.startswith("part-") and p.uri.endswith(".jsonl") for p in parts)
    records = _read_provenance(uri)
    assert sorted(r["step"] for r in records) == list(range(12))  # the server's step wins
    assert all(r["source_index"] == 100 + r["step"] for r in records)
    recorder.add(12, {"source_index": 112})  # after close: written at once, not lost
    assert len(_read_provenance(uri)) == 13


def test_model_from_s3_is_cached_by_content(model_dir, s3_bucket, tmp_path) -> None:
    from ladis_core.model.store import resolve_model_dir

    uri = s3_bucket + "models/digits"
    store.upload_dir(model_dir, uri)
    first = resolve_model_dir(uri, cache_dir=tmp_path)
    assert sorted(p.name for p in first.iterdir() if not p.name.startswith(".")) == [
        "model.json",
        "model.pt",
    ]
    assert resolve_model_dir(uri, cache_dir=tmp_path) == first
    # a retrained model of the same size must not be served from the stale cache
    spec = ModelSpec(class_names=CLASS_NAMES)
    retrained = save_model(build_model(spec), spec, tmp_path / "retrained")
    assert (retrained / "model.pt").stat().st_size == (first / "model.pt").stat().st_size
    store.upload_dir(retrained, uri)
    second = resolve_model_dir(uri, cache_dir=tmp_path)
    assert second != first
    assert (second / "model.pt").read_bytes() == (retrained / "model.pt").read_bytes()
    with start_server(uri, cache_dir=tmp_path) as running:
        assert ping(running.url)
    from ladis_core.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="no model under"):
        resolve_model_dir(s3_bucket + "models/none", cache_dir=tmp_path)


# --------------------------------------------------------------------------- capture


def _send_all(url: str, images: np.ndarray, *, workers: int) -> list[dict]:
    """POST every image concurrently, each with its index as provenance."""

    def one(index: int) -> dict:
        return invoke(
            url, images[index], provenance={"source_index": index, "attack": "none", "epsilon": 0.0}
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(len(images))))


@needs_capture
def test_concurrent_requests_are_each_captured_exactly_once(model_dir, tmp_path) -> None:
    from ladis_core.trials import load_provenance, load_trial

    capture_uri, provenance_uri = str(tmp_path / "inference"), str(tmp_path / "provenance")
    images = _images(32, seed=11)
    with start_server(
        model_dir, capture_uri=capture_uri, provenance_uri=provenance_uri, provenance_every=10
    ) as running:
        answers = _send_all(running.url, images, workers=16)
        batch_answer = invoke(running.url, _images(3, seed=12))  # one request, three rows
    steps = [a["step"] for a in answers]
    assert len(set(steps)) == 32 and batch_answer["step"] not in steps
    trial = load_trial(capture_uri, mode="PREDICT", include_inputs=True)
    assert trial.step_count == 33 and len(trial) == 35
    assert sorted(set(trial.steps.tolist())) == sorted([*steps, batch_answer["step"]])
    # the tensors recorded under each step are those of the request that was told that step
    row_of_step = {int(s): i for i, s in reversed(list(enumerate(trial.steps)))}
    for index, answer in enumerate(answers):
        row = row_of_step[answer["step"]]
        np.testing.assert_allclose(trial.inputs[row], images[index], atol=1e-6)
        assert trial.predicted_class[row] == answer["predictions"][0]["predicted_class"]
    provenance = load_provenance(provenance_uri)
    assert {step: record["source_index"] for step, record in provenance.items()} == {
        answer["step"]: index for index, answer in enumerate(answers)
    }
    assert len(store.list_objects(provenance_uri)) == 4  # 3 full parts of 10 + the rest on stop


@needs_capture
def test_capture_and_provenance_to_s3(model_dir, s3_bucket, tmp_path) -> None:
    from ladis_core.trials import load_provenance, load_trial

    model_uri = s3_bucket + "models/digits"
    store.upload_dir(model_dir, model_uri)
    capture_uri, provenance_uri = (
        s3_bucket + "trials/digits/inference",
        s3_bucket + "trials/digits/provenance",
    )
    images = _images(6, seed=13)
    with start_server(
        model_uri,
        capture_uri=capture_uri,
        provenance_uri=provenance_uri,
        cache_dir=tmp_path / "models",
        layers=[r"layer4\.1"],
    ) as running:
        answers = _send_all(running.url, images, workers=3)
    trial = load_trial(
        capture_uri, mode="PREDICT", cache_dir=tmp_path / "trials", layers=["layer4.1", "avgpool"]
    )
    assert trial.layers["layer4.1_output_0"].shape == (6, 512 * 4 * 4)
    assert sorted(trial.steps.tolist()) == sorted(a["step"] for a in answers)
    assert set(load_provenance(provenance_uri)) == {a["step"] for a in answers}


def _start_cli(args: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ladis_core", "serve", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = process.stdout.readline()  # blocks until the server is up (or the process died)
    if "listening on" not in line:
        process.kill()
        raise AssertionError(f"serve did not start: {line!r} {process.stderr.read()}")
    return process, line.strip().rsplit(" ", 1)[-1]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_flushes_everything_on_signal(model_dir, tmp_path, sig) -> None:
    args = ["--model", str(model_dir), "--device", "cpu"]
    capture_uri, provenance_uri = str(tmp_path / "inference"), str(tmp_path / "provenance")
    if HAS_CAPTURE:
        args += ["--capture", capture_uri, "--provenance", provenance_uri]
    process, url = _start_cli(args)
    try:
        answers = _send_all(url, _images(4, seed=14), workers=2)
        assert len(answers) == 4
    finally:
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in out
    if HAS_CAPTURE:
        from ladis_core.trials import load_provenance, load_trial

        steps = sorted(a["step"] for a in answers)
        assert sorted(load_trial(capture_uri, mode="PREDICT").steps.tolist()) == steps
        assert sorted(load_provenance(provenance_uri)) == steps


@needs_capture
def test_restarted_endpoint_goes_on_numbering_steps(model_dir, tmp_path) -> None:
    from ladis_core.trials import load_trial

    capture_uri = str(tmp_path / "inference")
    steps = []
    for run in range(2):
        with start_server(model_dir, capture_uri=capture_uri) as running:
            steps += [invoke(running.url, image)["step"] for image in _images(2, seed=20 + run)]
            running.flush()
            assert load_trial(capture_uri, mode="PREDICT").steps.tolist() == steps  # published
    assert steps == [0, 1, 2, 3]


@needs_capture
def test_two_endpoints_capturing_into_one_trial_are_stopped_not_interleaved(
    model_dir, s3_bucket, tmp_path
) -> None:
    """Both endpoints number their next step after the trial's newest; the first to
    publish it wins, the second stops publishing with a clear error (shown on /ping)
    and the trial keeps exactly the first endpoint's steps."""
    from ladis_core.capture import CaptureConflictError
    from ladis_core.trials import load_trial

    capture_uri = s3_bucket + "trials/shared/inference"
    images = _images(4, seed=30)
    first = start_server(model_dir, capture_uri=capture_uri)
    try:
        assert [invoke(first.url, image)["step"] for image in images[:2]] == [0, 1]
        first.flush()
        second = start_server(model_dir, capture_uri=capture_uri, operator_token="op-token")
        try:
            assert invoke(first.url, images[2])["step"] == 2
            first.flush()
            assert invoke(second.url, images[3])["step"] == 2  # the same number: a conflict
            with pytest.raises(CaptureConflictError, match="two endpoints are capturing"):
                second.flush()
            operator = urllib.request.Request(
                second.url + "/ping", headers={"X-Ladis-Operator-Token": "op-token"}
            )
            health = json.loads(urllib.request.urlopen(operator, timeout=10).read())
            assert "two endpoints are capturing" in health["capture"]["error"]
            anyone = json.loads(urllib.request.urlopen(second.url + "/ping", timeout=10).read())
            assert anyone["capture"] == capture_counts(recorded=1, published=0, upload_failing=True)
            ok = json.loads(urllib.request.urlopen(first.url + "/ping", timeout=10).read())
            assert ok["capture"] == capture_counts(recorded=3, published=3, upload_failing=False)
        finally:
            with pytest.raises(
                CaptureConflictError, match="two endpoints are capturing"
            ) as stopped:
                second.stop()
            # nothing is lost: the unpublished step stays in the staging folder named
            staging = Path(str(stopped.value).split("stay in ", 1)[1].split(")", 1)[0])
            assert any(staging.rglob("*.tfevents"))
            shutil.rmtree(staging.parent)
    finally:
        first.stop()
    trial = load_trial(
        capture_uri, mode="PREDICT", cache_dir=tmp_path / "cache", include_inputs=True
    )
    assert trial.steps.tolist() == [0, 1, 2]
    assert np.allclose(trial.inputs, images[:3], atol=1e-6)
