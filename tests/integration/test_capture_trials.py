"""Capture and trial reading with the real smdebug hook, a real torchvision ResNet18 and a
real SeaweedFS server: what is written is what the model computed, reading from S3 is
incremental, the serving capture records each concurrent request as its own step, and
bad input fails with a clear message."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from ladis_core import capture, store, trials
from ladis_core.errors import DataNotFoundError, InputError, StorageError
from ladis_core.model.spec import ModelSpec, build_model
from ladis_core.progress import Progress

pytestmark = pytest.mark.integration

SPEC = ModelSpec(input_shape=(3, 8, 8))  # small images keep the ResNet18 quick on CPU
BLOCKS = [f"layer{i}.{j}_output_0" for i in range(1, 5) for j in range(2)]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(SPEC).eval()


def _images(count: int, seed: int) -> torch.Tensor:
    return torch.rand(count, *SPEC.input_shape, generator=torch.Generator().manual_seed(seed))


def _activations(
    model: torch.nn.Module, images: torch.Tensor, names: list[str]
) -> dict[str, np.ndarray]:
    """Module outputs computed independently of smdebug (plain torch forward hooks)."""
    seen: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out.detach().numpy())
        )
        for name in names
    ]
    try:
        with torch.no_grad():
            seen["logits"] = model(images).numpy()
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _downloads(events: list[Progress]) -> int:
    """Objects fetched, from the progress reports of a read (index + event files)."""
    totals: dict[str, int] = {}
    for event in events:
        if event.stage in ("index", "download"):
            totals[event.stage] = event.total
    return sum(totals.values())


# --------------------------------------------------------------------------- reference capture


def test_reference_capture_saves_what_the_model_computes(model, tmp_path):
    batches = [_images(4, seed) for seed in range(3)]
    out = str(tmp_path / "reference")
    summary = capture.capture_reference(model, batches, out, layers=capture.RESIDUAL_BLOCKS)
    assert (summary.steps, summary.first_step, summary.last_step, summary.mode) == (3, 0, 2, "EVAL")
    assert summary.tensors == ("ResNet_input_0", *BLOCKS, "avgpool_output_0", "ResNet_output_0")

    assert trials.list_layers(out, mode="EVAL") == [*BLOCKS, "avgpool_output_0", "ResNet_output_0"]
    assert trials.last_step(out, mode="EVAL") == 2
    data = trials.load_trial(
        out, mode="EVAL", layers=["layer1.0", "avgpool", "ResNet_output_0"], include_inputs=True
    )
    images = torch.cat(batches)
    expected = _activations(model, images, ["layer1.0", "avgpool"])
    assert len(data) == 12 and data.step_count == 3
    assert data.steps.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert data.layers["layer1.0_output_0"].shape == (12, 64 * 8 * 8)
    np.testing.assert_allclose(
        data.layers["layer1.0_output_0"], expected["layer1.0"].reshape(12, -1), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        data.layers["avgpool_output_0"], expected["avgpool"].reshape(12, 512), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        data.layers["ResNet_output_0"], expected["logits"], rtol=1e-5, atol=1e-5
    )
    assert np.array_equal(data.predicted_class, expected["logits"].argmax(axis=1))
    assert np.array_equal(data.inputs, images.numpy())
    assert (
        data.inputs.dtype == np.float32
        and data.steps.dtype == np.int64
        and data.predicted_class.dtype == np.int64
    )
    # default layer: the penultimate one
    assert list(trials.load_trial(out, mode="EVAL").layers) == ["avgpool_output_0"]
    # the hooks are gone from the model: later forward passes write nothing
    with torch.no_grad():
        model(images)
    assert sorted(p.name for p in (Path(out) / "events").iterdir()) == [
        f"{s:012d}" for s in range(3)
    ]


def test_our_decoder_agrees_with_smdebugs_reader(model, tmp_path):
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    out = str(tmp_path / "reference")
    capture.capture_reference(model, [_images(2, 5), _images(3, 6)], out, layers=[r"layer4\.1"])
    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    trial = create_trial(out)
    data = trials.load_trial(
        out, mode="EVAL", layers=["layer4.1", "avgpool", "ResNet_output_0"], include_inputs=True
    )
    for name in ["layer4.1_output_0", "avgpool_output_0", "ResNet_output_0", "ResNet_input_0"]:
        tensor = trial.tensor(name)
        theirs = np.concatenate(
            [tensor.value(s, mode=ModeKeys.EVAL) for s in tensor.steps(mode=ModeKeys.EVAL)]
        )
        ours = data.inputs if name == "ResNet_input_0" else data.layers[name]
        assert np.array_equal(theirs.reshape(len(theirs), -1), ours.reshape(len(ours), -1)), name


def test_eval_capture_saves_every_nth_eval_pass_only(model, tmp_path):
    out = str(tmp_path / "reference")
    with capture.EvalCapture(model, out, save_every=2, include_inputs=False) as cap:
        for epoch in range(2):
            cap.set_mode("TRAIN")
            with torch.no_grad():
                model(_images(2, 100 + epoch))  # training passes: never saved
            cap.set_mode("EVAL")
            with torch.no_grad():
                for batch in range(3):
                    model(_images(2, 10 * epoch + batch))
    # EVAL passes 0..5 → every 2nd: 0, 2, 4
    assert cap.summary is not None and cap.summary.steps == 3
    data = trials.load_trial(out, mode="EVAL")
    assert sorted(set(data.steps.tolist())) == [0, 2, 4]
    with pytest.raises(DataNotFoundError, match="TRAIN"):
        trials.load_trial(out, mode="TRAIN")


def test_capture_to_s3_and_refusing_to_mix_trials(model, s3_bucket):
    uri = s3_bucket + "trials/demo/reference"
    capture.capture_reference(model, [_images(3, 1)], uri, include_inputs=False)
    assert trials.load_trial(uri, mode="EVAL").layers["avgpool_output_0"].shape == (3, 512)
    with pytest.raises(InputError, match="already holds a trial"):
        capture.capture_reference(model, [_images(3, 2)], uri)
    # overwrite: the old trial is deleted first, a cached copy notices the rewrite
    capture.capture_reference(model, [_images(5, 2)], uri, include_inputs=False, overwrite=True)
    assert len(trials.load_trial(uri, mode="EVAL")) == 5


# --------------------------------------------------------------------------- serving capture


def test_concurrent_requests_are_one_step_each_in_s3(model, s3_bucket, tmp_path):
    uri = s3_bucket + "trials/demo/inference"
    requests = {i: _images(1 + i % 3, 1000 + i) for i in range(12)}
    recorded: dict[int, int] = {}
    with capture.ServingCapture(model, uri, upload_interval_s=0.05) as cap:
        barrier = threading.Barrier(6)

        def serve(numbers):
            barrier.wait()
            for number in numbers:
                logits, step = cap.record(requests[number])
                recorded[number] = step
                with torch.no_grad():  # a direct forward pass meanwhile is not a request
                    torch.testing.assert_close(logits, model(requests[number]))

        threads = [threading.Thread(target=serve, args=(list(range(k, 12, 6)),)) for k in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(recorded.values()) == list(range(12))  # every request its own step

    data = trials.load_trial(uri, mode="PREDICT", include_inputs=True, cache_dir=tmp_path / "cache")
    assert data.step_count == 12 and len(data) == sum(len(x) for x in requests.values())
    for number, step in recorded.items():
        rows = data.steps == step
        assert np.array_equal(data.inputs[rows], requests[number].numpy())
    assert data.steps.tolist() == sorted(data.steps.tolist())


def test_incremental_read_fetches_only_new_objects(model, s3_bucket, tmp_path):
    uri = s3_bucket + "trials/demo/inference"
    cache = tmp_path / "cache"
    cap = capture.ServingCapture(model, uri, upload_interval_s=0, include_inputs=False)
    try:
        for i in range(5):
            cap.record(_images(1, i))
        assert cap.flush() == 5
        events: list[Progress] = []
        first = trials.load_trial(uri, mode="PREDICT", cache_dir=cache, progress=events.append)
        assert first.steps.tolist() == [0, 1, 2, 3, 4]
        assert _downloads(events) == 10  # 5 index + 5 event files

        for i in range(3):
            cap.record(_images(2, 10 + i))
        cap.flush()
        events.clear()
        second = trials.load_trial(uri, mode="PREDICT", cache_dir=cache, progress=events.append)
        assert second.steps.tolist() == [0, 1, 2, 3, 4, 5, 5, 6, 6, 7, 7]
        assert _downloads(events) == 6  # only the 3 new steps
        assert np.array_equal(
            second.layers["avgpool_output_0"][:5], first.layers["avgpool_output_0"]
        )

        events.clear()
        again = trials.load_trial(uri, mode="PREDICT", cache_dir=cache, progress=events.append)
        assert _downloads(events) == 0
        assert np.array_equal(again.layers["avgpool_output_0"], second.layers["avgpool_output_0"])

        window = trials.load_trial(uri, mode="PREDICT", cache_dir=cache, after_step=4, until_step=6)
        assert window.steps.tolist() == [5, 5, 6, 6]
        empty = trials.load_trial(uri, mode="PREDICT", cache_dir=cache, after_step=7)
        assert len(empty) == 0 and list(empty.layers) == ["avgpool_output_0"]
    finally:
        cap.close()


def test_restarted_endpoint_appends_after_the_last_step(model, s3_bucket, tmp_path):
    uri = s3_bucket + "trials/demo/inference"
    with capture.ServingCapture(model, uri, include_inputs=False) as cap:
        assert [cap.record(_images(1, i))[1] for i in range(3)] == [0, 1, 2]
    with capture.ServingCapture(model, uri, include_inputs=False) as cap:
        assert [cap.record(_images(1, i))[1] for i in range(2)] == [3, 4]
        assert cap.last_step == 4
    data = trials.load_trial(uri, mode="PREDICT", cache_dir=tmp_path / "cache")
    assert data.steps.tolist() == [0, 1, 2, 3, 4]
    assert trials.last_step(uri, mode="PREDICT") == 4
    with pytest.raises(capture.CaptureClosedError):
        cap.record(_images(1, 0))


_KILLED_ENDPOINT = """
import os, signal, sys, torch
from ladis_core import capture
from ladis_core.model.spec import ModelSpec, build_model
model = build_model(ModelSpec(input_shape=(3, 8, 8))).eval()
cap = capture.ServingCapture(model, sys.argv[1], include_inputs=True, upload_interval_s=0)
for i in range(3):
    cap.record(torch.full((1, 3, 8, 8), i / 10))
    if i == 0:
        cap.flush()  # step 0 reaches the trial, steps 1 and 2 only the staging folder
cap.wait_until_staged()  # (a step still queued in memory dies with the process)
print(cap._staging_root, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_steps_staged_by_a_killed_endpoint_are_published_by_the_next_one(
    model, s3_bucket, tmp_path
):
    uri = s3_bucket + "trials/killed/inference"
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_ENDPOINT, uri],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SMDEBUG_LOG_LEVEL": "error"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    staging = Path(killed.stdout.strip())
    assert staging.is_dir()
    assert trials.load_trial(uri, mode="PREDICT", cache_dir=tmp_path / "before").steps.tolist() == [
        0
    ]

    with capture.ServingCapture(model, uri, include_inputs=True, upload_interval_s=0) as cap:
        assert cap.record(torch.full((1, *SPEC.input_shape), 0.3))[1] == 3
    assert not staging.exists()
    after = trials.load_trial(
        uri, mode="PREDICT", cache_dir=tmp_path / "after", include_inputs=True
    )
    assert after.steps.tolist() == [0, 1, 2, 3]
    assert np.allclose(after.inputs[:, 0, 0, 0], [0.0, 0.1, 0.2, 0.3], atol=1e-6)


def test_a_failed_request_leaves_no_step_behind(model, tmp_path):
    out = str(tmp_path / "inference")
    with capture.ServingCapture(model, out, include_inputs=False) as cap:
        cap.record(_images(1, 0))
        with pytest.raises(RuntimeError):
            cap.record(torch.zeros(1, 5, 8, 8))  # wrong channel count: fails inside the model
        assert cap.record(_images(1, 1))[1] == 1  # the failed request used no step number
    data = trials.load_trial(out, mode="PREDICT")
    assert data.steps.tolist() == [0, 1]
    with pytest.raises(InputError, match="without PREDICT steps"):
        ref = str(tmp_path / "reference")
        capture.capture_reference(model, [_images(1, 0)], ref, include_inputs=False)
        capture.ServingCapture(model, ref)


def test_reader_stops_before_a_step_whose_events_are_missing(model, s3_bucket, tmp_path):
    uri = s3_bucket + "trials/demo/inference"
    with capture.ServingCapture(model, uri, include_inputs=False) as cap:
        for i in range(4):
            cap.record(_images(1, i))
    store.delete(f"{uri}/events/000000000002/000000000002_worker_0.tfevents")
    data = trials.load_trial(uri, mode="PREDICT", cache_dir=tmp_path / "cache")
    assert data.steps.tolist() == [0, 1]  # never past a step that has not fully arrived


def _spread_trial(local: Path, first_steps: list[int], *, count: int) -> list[int]:
    """A real serving capture at ``local`` whose steps come in runs of ``count`` from each
    of ``first_steps``, as an endpoint restarted after that many requests numbers them, so
    that several index folders (1,000 steps each) are used without writing 1,000s of
    steps. A one-layer stand-in model keeps it quick; step ``s`` holds the value ``s``."""
    from torch import nn

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(3, 4)

        def forward(self, x):
            return self.fc(torch.flatten(self.avgpool(x), 1))

    small = ResNet().eval()
    steps = []
    for first in first_steps:
        with capture.ServingCapture(
            small, str(local), include_inputs=False, upload_interval_s=0
        ) as cap:
            if first:
                cap._continue_from(first - 1, first - 1)
            for step in range(first, first + count):
                cap.record(torch.full((1, 3, 2, 2), float(step)))
                steps.append(step)
    return steps


def test_packed_cache_serves_sealed_index_folders(tmp_path, s3_bucket):
    """Steps on both sides of step 1,000 span two index folders: the first is sealed and
    its rows are packed."""
    local = tmp_path / "trial"
    steps = _spread_trial(local, [0, 995], count=5) + _spread_trial(local, [1000], count=5)
    uri = s3_bucket + "trials/many/inference"
    store.upload_dir(local, uri)
    cache = tmp_path / "cache"
    cold = trials.load_trial(uri, mode="PREDICT", cache_dir=cache)
    assert (cache / "_packs" / "000000000" / "PREDICT" / "avgpool_output_0.npy").is_file()
    assert not (cache / "_packs" / "000000001").exists()  # still growing: not packed
    warm = trials.load_trial(uri, mode="PREDICT", cache_dir=cache)
    direct = trials.load_trial(str(local), mode="PREDICT")
    for data in (cold, warm, direct):
        assert data.steps.tolist() == steps
        assert np.array_equal(
            data.layers["avgpool_output_0"][:, 0], np.array(steps, dtype=np.float32)
        )
    part = trials.load_trial(uri, mode="PREDICT", cache_dir=cache, after_step=3, until_step=1001)
    assert part.steps.tolist() == [4, *range(995, 1002)]


def test_a_window_early_in_a_long_trial_fetches_only_its_index_folders(tmp_path, s3_bucket):
    """Reading up to ``until_step`` stops syncing the index after the first folder that
    goes past it; a later, wider read fetches the rest and gives what a cold read gives."""
    local = tmp_path / "trial"
    steps = _spread_trial(local, [0, 1000, 2000], count=4)
    uri = s3_bucket + "trials/long/inference"
    store.upload_dir(local, uri)
    cache = tmp_path / "cache"

    events: list[Progress] = []
    early = trials.load_trial(
        uri, mode="PREDICT", cache_dir=cache, until_step=2, progress=events.append
    )
    assert early.steps.tolist() == [0, 1, 2]
    assert _downloads(events) == 4 + 3  # folder 0's index files, the window's event files
    assert not (cache / "index" / "000000001").exists()

    events.clear()
    middle = trials.load_trial(
        uri, mode="PREDICT", cache_dir=cache, after_step=2, until_step=1001, progress=events.append
    )
    assert middle.steps.tolist() == [3, 1000, 1001]
    assert _downloads(events) == 4 + 3  # folder 1's index files (folder 0 is sealed), 3 events
    assert not (cache / "index" / "000000002").exists()

    whole = trials.load_trial(uri, mode="PREDICT", cache_dir=cache)
    cold = trials.load_trial(uri, mode="PREDICT", cache_dir=tmp_path / "cold")
    for data in (whole, cold):
        assert data.steps.tolist() == steps
        assert np.array_equal(
            data.layers["avgpool_output_0"][:, 0], np.array(steps, dtype=np.float32)
        )


def test_a_pruned_trial_cache_is_fetched_again_on_the_next_read(tmp_path, s3_bucket, monkeypatch):
    from ladis_core.store import local_cache

    monkeypatch.setenv("LADIS_CACHE_DIR", str(tmp_path / "cache"))
    local = tmp_path / "trial"
    steps = _spread_trial(local, [0], count=3)
    uri = s3_bucket + "trials/pruned/inference"
    store.upload_dir(local, uri)
    first = trials.load_trial(uri, mode="PREDICT")
    (entry,) = local_cache.list_cache()
    assert entry.uri == uri and entry.path == trials.default_cache_dir(uri)
    assert [e.uri for e in local_cache.prune_cache(max_bytes=0).removed] == [uri]
    assert not entry.path.exists()
    again = trials.load_trial(uri, mode="PREDICT")
    assert again.steps.tolist() == first.steps.tolist() == steps
    assert np.array_equal(again.layers["avgpool_output_0"], first.layers["avgpool_output_0"])

    # a reader waiting for the lock while the folder is pruned still reads the trial (fetched again)
    import fcntl
    import shutil

    folder = trials.default_cache_dir(uri)
    results = []
    with open(folder / local_cache.TRIAL_LOCK, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as `cache prune` holds it while removing
        reader = threading.Thread(
            target=lambda: results.append(trials.load_trial(uri, mode="PREDICT"))
        )
        reader.start()
        reader.join(timeout=1.0)
        assert reader.is_alive()  # waiting for the lock
        shutil.rmtree(folder)
    reader.join(timeout=60)
    assert results and results[0].steps.tolist() == steps
    assert (folder / local_cache.TRIAL_MANIFEST).is_file()


# --------------------------------------------------------------------------- provenance


def test_provenance_parts_are_merged_by_step(s3_bucket, caplog):
    prefix = s3_bucket + "trials/demo/provenance"
    lines = [
        {
            "step": s,
            "source_index": 10 + s,
            "true_label": s % 3,
            "attack": "none",
            "epsilon": 0.0,
            "hour": "h",
        }
        for s in range(4)
    ]
    store.write_bytes(
        f"{prefix}/part-0.jsonl", "\n".join(json.dumps(x) for x in lines[:2]).encode()
    )
    store.write_bytes(
        f"{prefix}/part-1.jsonl", "\n".join(json.dumps(x) for x in lines[2:]).encode() + b"\n"
    )
    records = trials.load_provenance(prefix)
    assert sorted(records) == [0, 1, 2, 3] and records[3]["source_index"] == 13
    assert trials.load_provenance(s3_bucket + "trials/none/provenance") == {}
    # one malformed line hides nothing else (issue 11): it is skipped, and named in the log
    store.write_bytes(f"{prefix}/part-2.jsonl", b'{"step": 9}\nnot json\n[1]\n{"step": "x"}\n')
    with caplog.at_level(logging.WARNING):
        records = trials.load_provenance(prefix)
    assert sorted(records) == [0, 1, 2, 3, 9]
    assert any(
        "part-2.jsonl" in r.getMessage()
        and "3 malformed line(s)" in r.getMessage()
        and "line 2" in r.getMessage()
        for r in caplog.records
    )


# --------------------------------------------------------------------------- bad input


def test_missing_or_empty_trials_are_data_not_found(s3_bucket, tmp_path):
    with pytest.raises(DataNotFoundError, match="missing or empty"):
        trials.load_trial(
            s3_bucket + "trials/nothing/here", mode="PREDICT", cache_dir=tmp_path / "c"
        )
    with pytest.raises(DataNotFoundError, match="missing or empty"):
        trials.load_trial(str(tmp_path / "absent"), mode="EVAL")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError):
        trials.load_trial(str(tmp_path / "empty"), mode="EVAL")
    with pytest.raises(DataNotFoundError):
        trials.list_layers(s3_bucket + "trials/nothing/here", mode="EVAL")
    assert trials.last_step(s3_bucket + "trials/nothing/here", mode="PREDICT") is None
    with pytest.raises(StorageError, match="does not exist"):
        trials.load_trial("s3://no-such-bucket-ladis/trial", mode="EVAL", cache_dir=tmp_path / "c2")


def test_unknown_layer_lists_the_available_ones(model, tmp_path):
    out = str(tmp_path / "reference")
    capture.capture_reference(model, [_images(2, 0)], out, layers=[r"layer4\.1"])
    with pytest.raises(
        InputError,
        match=r"'layer9' is not in the trial.*available layers: layer4\.1_output_0, avgpool_output_0, ResNet_output_0",
    ):
        trials.load_trial(out, mode="EVAL", layers=["layer9"])
    with pytest.raises(InputError, match="mode='SERVE'"):
        trials.load_trial(out, mode="SERVE")
    with pytest.raises(InputError, match="until_step"):
        trials.load_trial(out, mode="EVAL", after_step=3, until_step=2)


def test_corrupt_files_are_named(model, tmp_path):
    out = tmp_path / "reference"
    capture.capture_reference(model, [_images(2, 0), _images(2, 1)], str(out), include_inputs=False)
    event = out / "events" / "000000000001" / "000000000001_worker_0.tfevents"
    data = bytearray(event.read_bytes())
    data[20:60] = b"\xff" * 40  # garble the first record's protobuf
    event.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=r"000000000001_worker_0\.tfevents is corrupt"):
        trials.load_trial(str(out), mode="EVAL")
    event.write_bytes(bytes(data[:100]))
    with pytest.raises(StorageError, match=r"000000000001_worker_0\.tfevents is shorter"):
        trials.load_trial(str(out), mode="EVAL")
    index = out / "index" / "000000000" / "000000000000_worker_0.json"
    index.write_text("{not json")
    with pytest.raises(
        StorageError, match=r"000000000000_worker_0\.json is not a valid smdebug index file"
    ):
        trials.load_trial(str(out), mode="EVAL")


def test_bad_capture_settings_are_input_errors(model, tmp_path):
    with pytest.raises(
        InputError, match=r"'layer7' matches no module of ResNet; module names: normalize, conv1"
    ):
        capture.EvalCapture(model, str(tmp_path / "a"), layers=["layer7"])
    with pytest.raises(InputError, match="save_every"):
        capture.EvalCapture(model, str(tmp_path / "b"), save_every=0)
    with pytest.raises(InputError, match="bare bucket"):
        capture.ServingCapture(model, "s3://bucket-only")
    with pytest.raises(InputError, match="shape"):
        capture.capture_reference(
            model, [np.zeros((3, 8, 8), dtype=np.float32)], str(tmp_path / "c")
        )
