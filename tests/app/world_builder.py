"""A small but real LADIS world for the dashboard tests.

Preferred: the demo engineer's ``ladis_core.demo.build_world`` with its tiny preset.
Fallback (while that is not available): the same pipeline assembled here from the real
pieces — the digits data set, a seeded ResNet18 (random weights: training is not what
these tests check), real FGSM adversarial images, the real smdebug hook writing the
reference (EVAL) and inference (PREDICT) trials, provenance and ``natural.npz`` in the
world layout, and the real monitoring job run once per simulated hour on the steps
uploaded for that hour. Sizes are kept tiny (8×8 images, 30 requests an hour, n = R = 20,
B = 200) so it builds in seconds.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from ladis_core import layout, storage
from ladis_core.results import JobResult, JobSettings

ENDPOINT = "digits"
SIZE = 8
PER_HOUR = 30
SETTINGS = JobSettings(n_samples=20, n_repeats=20, n_permutations=200, seed=0)
START = datetime(2026, 11, 23, 0, tzinfo=UTC)
LAYERS = ("avgpool_output_0", "layer3.1_output_0")
#: (attack, epsilon) of every simulated hour
HOURS = (("none", 0.0), ("fgsm", 0.15), ("none", 0.0), ("fgsm", 0.3))


@dataclass(frozen=True)
class DashWorld:
    uri: str
    endpoint: str
    jobs: tuple[JobResult, ...]

    @property
    def monitoring(self) -> str:
        return layout.monitoring_uri(self.uri, self.endpoint)


def build(world_uri: str, local_dir: Path, *, log: Callable[[str], None] = print) -> DashWorld:
    """Build the test world at ``world_uri`` (an empty bucket or folder)."""
    try:
        from ladis_core import demo  # noqa: F401
    except ImportError:
        demo = None
    builder = getattr(demo, "build_world", None) if demo is not None else None
    if builder is not None and hasattr(demo, "DemoOptions") and hasattr(demo.DemoOptions, "tiny"):
        log("building the test world with ladis_core.demo.build_world (tiny preset)")
        builder(world_uri, options=demo.DemoOptions.tiny())
        from ladis_core import monitor

        endpoint = storage.list_children(layout.join(world_uri, "monitoring"))[0]
        jobs = monitor.load_jobs(layout.monitoring_uri(world_uri, endpoint))
        return DashWorld(uri=world_uri, endpoint=endpoint, jobs=tuple(jobs))
    log("building the test world from the real pieces (demo.build_world not available)")
    return _assemble(world_uri, local_dir)


def _assemble(world_uri: str, local_dir: Path) -> DashWorld:
    import torch

    # one thread: on a small shared machine torch's pool mostly waits for the other cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _assemble_world(world_uri, local_dir)
    finally:
        torch.set_num_threads(threads)


def _assemble_world(world_uri: str, local_dir: Path) -> DashWorld:
    import torch

    from ladis_core import attacks, monitor
    from ladis_core.data import digits_dataset
    from ladis_core.models import ModelSpec, build_model, save_model

    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    data = digits_dataset(size=SIZE, channels=3)
    names = [f"digit {i}" for i in range(10)]
    spec = ModelSpec(input_shape=(3, SIZE, SIZE), class_names=names)
    with torch.random.fork_rng():  # seeds only this block
        torch.manual_seed(0)
        model = build_model(spec).eval()

    rng = np.random.default_rng(0)
    order = rng.permutation(len(data))
    reference_rows = order[:160]
    natural_rows = order[200 : 200 + PER_HOUR * len(HOURS)]
    natural = data.images[natural_rows].astype(np.float32)
    labels = data.labels[natural_rows].astype(np.int64)

    # traffic: one request per step, hour by hour, with provenance
    requests: list[np.ndarray] = []
    provenance: list[dict] = []
    for hour, (kind, eps) in enumerate(HOURS):
        rows = np.arange(hour * PER_HOUR, (hour + 1) * PER_HOUR)
        images = natural[rows]
        if kind != "none":
            images = attacks.attack(model, images, labels[rows], method=kind, epsilon=eps, seed=hour).images
        for k, row in enumerate(rows):
            step = hour * PER_HOUR + k
            requests.append(images[k].astype(np.float32))
            provenance.append({"step": step, "source_index": int(row), "true_label": int(labels[row]),
                               "attack": kind, "epsilon": float(eps),
                               "hour": layout.job_id_for(START + timedelta(hours=hour))})

    local_dir.mkdir(parents=True, exist_ok=True)
    reference_dir, inference_dir = local_dir / "reference", local_dir / "inference"
    batches = [data.images[reference_rows[i : i + 40]].astype(np.float32) for i in range(0, 160, 40)]
    _write_trial(model, reference_dir, eval_batches=batches)
    _write_trial(model, inference_dir, predict=requests)

    save_model(model, spec, local_dir / "model")
    storage.upload_dir(local_dir / "model", layout.model_uri(world_uri, ENDPOINT))
    buffer = io.BytesIO()
    np.savez(buffer, images=natural, labels=labels, class_names=np.array(names))
    storage.write_bytes(layout.dataset_uri(world_uri, ENDPOINT), buffer.getvalue())
    prov_uri = layout.provenance_uri(world_uri, ENDPOINT)
    storage.write_bytes(layout.join(prov_uri, "part-000.jsonl"),
                        "".join(json.dumps(r) + "\n" for r in provenance).encode())
    reference = layout.reference_trial_uri(world_uri, ENDPOINT)
    inference = layout.inference_trial_uri(world_uri, ENDPOINT)
    _upload(reference_dir, reference)

    jobs = []
    for hour in range(len(HOURS)):
        steps = range(hour * PER_HOUR, (hour + 1) * PER_HOUR)
        _upload(inference_dir, inference, steps=steps, with_rest=hour == 0)
        jobs.append(
            monitor.run_job(
                reference=reference, inference=inference,
                output=layout.monitoring_uri(world_uri, ENDPOINT),
                at=START + timedelta(hours=hour + 1), layers=list(LAYERS), settings=SETTINGS,
                endpoint=ENDPOINT, cache_dir=str(local_dir / "cache"),
            )
        )
    return DashWorld(uri=world_uri, endpoint=ENDPOINT, jobs=tuple(jobs))


def _write_trial(model, out_dir: Path, *, eval_batches=(), predict=()) -> None:
    """Run ``model`` under the real smdebug hook (EVAL batches, then PREDICT requests)."""
    import torch
    from smdebug import modes
    from smdebug.pytorch import Hook, SaveConfig

    hook = Hook(
        out_dir=str(out_dir),
        save_config=SaveConfig(save_interval=1),
        include_regex=[".*avgpool_output", "ResNet_output_0", r"layer3\.1_output_0", "ResNet_input_0"],
        save_all=False,
    )
    hook.register_module(model)
    try:
        with torch.no_grad():
            if len(eval_batches):
                hook.set_mode(modes.EVAL)
                for batch in eval_batches:
                    model(torch.from_numpy(batch))
            if len(predict):
                hook.set_mode(modes.PREDICT)
                for image in predict:
                    model(torch.from_numpy(image[None]))
    finally:
        hook.close()


def _step_of(relative: str) -> int | None:
    head = relative.rsplit("/", 1)[-1].split("_", 1)[0]
    return int(head) if head.isdigit() and relative.startswith(("events/", "index/")) else None


def _upload(local: Path, uri: str, *, steps: range | None = None, with_rest: bool = True) -> None:
    """Copy a local trial (or only some global steps) to ``uri``: event files first, then
    index files, then the rest, the order capture uses."""
    files = sorted(p for p in local.rglob("*") if p.is_file())
    chosen = []
    for path in files:
        relative = path.relative_to(local).as_posix()
        step = _step_of(relative)
        if (step is None and with_rest) or (step is not None and (steps is None or step in steps)):
            chosen.append((relative, path))
    for prefix in ("events/", "index/", ""):
        batch = [(r, p) for r, p in chosen
                 if (r.startswith(prefix) if prefix else not r.startswith(("events/", "index/")))]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda rp: storage.write_bytes(f"{uri}/{rp[0]}", rp[1].read_bytes()), batch))
