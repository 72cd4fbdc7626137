"""Trials as a SageMaker training job writes them: two workers (DDP over gloo) with
smdebug's own hook, ``include_workers="all"``, ``save_interval=2``, weights and loss
collections beside the layers, ``training_job_end.ts`` from smdebug's exit handler;
uploaded to S3 as SageMaker does, read by LADIS (checked against smdebug's own reader)
and monitored end to end without naming a layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ladis_core import store, trials
from ladis_core.devtools.ports import find_free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "support" / "sagemaker_worker.py"


def test_a_two_worker_training_trial_is_read_and_monitored(s3_bucket, tmp_path):
    import torch

    from ladis_core import monitoring
    from ladis_core.capture import ServingCapture
    from ladis_core.model.data import digits_dataset
    from ladis_core.monitoring.results import JobSettings

    digits = digits_dataset(size=16)
    order = np.random.default_rng(0).permutation(len(digits))
    np.savez(
        tmp_path / "data.npz", images=digits.images[order[:560]], labels=digits.labels[order[:560]]
    )
    local = tmp_path / "tensors"
    port = find_free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GLOO_SOCKET_IFNAME": "lo",
        "SMDEBUG_TRAINING_END_DELAY_REFRESH": "0",
    }
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(rank),
                "2",
                str(port),
                str(local),
                str(tmp_path / "data.npz"),
                str(tmp_path / "weights.pt"),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    for worker in workers:
        worker.wait(timeout=300)
        assert worker.returncode == 0, worker.stderr.read()  # type: ignore[union-attr]
    assert (local / "training_job_end.ts").is_file()
    index_names = sorted(p.name for p in (local / "index").rglob("*.json"))
    assert {n.rsplit("_", 2)[-2] + "_" + n.rsplit("_", 1)[-1] for n in index_names} == {
        "worker_0.json",
        "worker_1.json",
    }

    reference = f"{s3_bucket}trials/trained/reference"
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        store.write_bytes(f"{reference}/{path.relative_to(local).as_posix()}", path.read_bytes())

    data = trials.load_trial(reference, mode="EVAL", include_inputs=True)
    assert list(data.layers) == ["pool_output_0"]  # from ladis.json, among weights and losses
    # 2 workers × EVAL steps 0, 2, 4 of 6 × 20 images
    assert len(data) == 120 and sorted(set(data.steps.tolist())) == [0, 2, 4]
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    theirs = create_trial(str(local))
    assert sorted(theirs.workers()) == ["worker_0", "worker_1"]
    ours = {int(s): data.layers["pool_output_0"][data.steps == s] for s in (0, 2, 4)}
    for step, rows in ours.items():
        values = [
            theirs.tensor("pool_output_0").value(step, mode=ModeKeys.EVAL, worker=w).reshape(20, -1)
            for w in ("worker_0", "worker_1")
        ]
        np.testing.assert_allclose(
            np.sort(rows, axis=0), np.sort(np.concatenate(values), axis=0), rtol=1e-6
        )

    sys.path.insert(0, str(REPO / "examples"))
    try:
        from mymodel import build
    finally:
        sys.path.remove(str(REPO / "examples"))
    model = build()
    model.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
    inference = f"{s3_bucket}trials/trained/inference"
    natural = digits.images[order[600:650]]
    with ServingCapture(
        model.eval(), inference, input_shape=(3, 16, 16), upload_interval_s=0
    ) as capture:
        for image in natural:
            capture.record(torch.from_numpy(image[None]))
    result = monitoring.run_job(
        reference=reference,
        inference=inference,
        output=f"{s3_bucket}monitoring/trained",
        settings=JobSettings(n_samples=20, n_repeats=20, n_permutations=200, seed=0),
        cache_dir=str(tmp_path / "cache"),
    )
    assert result.status == "ok" and list(result.layers) == ["pool_output_0"]
    assert result.requests == 50 and not result.incident, result.detection_rate
