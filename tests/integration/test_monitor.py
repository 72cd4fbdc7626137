"""The monitoring job end to end: real smdebug trials (written by the real hook for a
torchvision ResNet18), a real SeaweedFS S3 server, the real CLI.

Trials are captured by ``ladis_core.capture`` (smdebug hooks): once per module into local
folders, uploaded step by step into a fresh bucket per test the way capture publishes
them (event files first, then index files), and in the main test straight into S3 by the
serving capture. n = 20, R = 20, B = 200 keep every job well under a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from ladis_core import cli, processing, store
from ladis_core import monitoring as monitor
from ladis_core.errors import DataNotFoundError, InputError, StorageError
from ladis_core.monitoring.metrics import cloudwatch_publisher
from ladis_core.monitoring.results import STATUS_INSUFFICIENT, STATUS_OK, JobResult, JobSettings
from ladis_core.store import layout

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N, R, B = 20, 20, 200
SETTINGS = JobSettings(n_samples=N, n_repeats=R, n_permutations=B, seed=0)
CLEAN = range(0, 40)  # inference steps of natural digits
SHIFTED = range(40, 80)  # inference steps of noisy digits
T1, T2, T3 = "2026-11-23T17:00:00Z", "2026-11-23T18:00:00Z", "2026-11-23T19:00:00Z"
PENULTIMATE = "avgpool_output_0"
MID = "layer3.1_output_0"


# --------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class LocalTrials:
    reference: Path  # EVAL, 240 natural digits in 6 steps of 40
    inference: Path  # PREDICT, one step per request: CLEAN then SHIFTED
    other_reference: Path  # EVAL from 12×12 inputs: layer3.1 has another shape


def _model(size: int):
    """A seeded ResNet18 (random weights: the job needs representations, not accuracy)."""
    import torch

    from ladis_core.model.spec import ModelSpec, build_model

    with torch.random.fork_rng():  # seeds only this block; the global generator is restored
        torch.manual_seed(0)
        return build_model(ModelSpec(input_shape=(3, size, size))).eval()


def _write_trial(out: Path | str, *, size: int, eval_batches=(), predict=()) -> None:
    """Capture with the project's smdebug hooks: EVAL batches (reference) or one PREDICT
    step per request (inference, appended after the trial's last step)."""
    import torch

    from ladis_core.capture import ServingCapture, capture_reference

    model = _model(size)
    if len(eval_batches):
        capture_reference(
            model,
            [torch.from_numpy(b) for b in eval_batches],
            str(out),
            layers=["layer3.1"],
            include_inputs=False,
        )
    if len(predict):
        with ServingCapture(
            model, str(out), layers=["layer3.1"], include_inputs=False, upload_interval_s=0
        ) as capture:
            for image in predict:
                capture.record(torch.from_numpy(image[None]))


@pytest.fixture(scope="module")
def local_trials(tmp_path_factory: pytest.TempPathFactory) -> LocalTrials:
    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    from ladis_core.model.data import digits_dataset

    root = tmp_path_factory.mktemp("trials")
    images = digits_dataset(size=8, channels=3).images.astype(np.float32)
    # shuffled: sklearn's digits are ordered by writer, so slices differ in distribution
    rng = np.random.default_rng(7)
    order = rng.permutation(len(images))
    reference, clean = images[order[:240]], images[order[240 : 240 + len(CLEAN)]]
    noisy = images[order[300 : 300 + len(SHIFTED)]] + rng.normal(0, 0.5, (len(SHIFTED), 3, 8, 8))
    trials = LocalTrials(root / "reference", root / "inference", root / "other_reference")
    _write_trial(
        trials.reference, size=8, eval_batches=[reference[i : i + 40] for i in range(0, 240, 40)]
    )
    _write_trial(
        trials.inference,
        size=8,
        predict=np.concatenate([clean, np.clip(noisy, 0, 1)]).astype(np.float32),
    )
    big = digits_dataset(size=12, channels=3).images.astype(np.float32)[order[:120]]
    _write_trial(
        trials.other_reference, size=12, eval_batches=[big[i : i + 40] for i in range(0, 120, 40)]
    )
    # the same requests as arrays, for tests that capture straight into S3
    np.save(root / "clean.npy", clean)
    np.save(root / "shifted.npy", np.clip(noisy, 0, 1).astype(np.float32))
    return trials


def _step_of(relative: str) -> int | None:
    name = relative.rsplit("/", 1)[-1]
    head = name.split("_", 1)[0]
    return int(head) if head.isdigit() and (relative.startswith(("events/", "index/"))) else None


def upload(local: Path, uri: str, steps: range | None = None) -> None:
    """Copy a local trial (or only the given global steps) to ``uri``: event files
    first, then index files, as capture does."""
    files = sorted(p for p in local.rglob("*") if p.is_file())
    chosen = []
    for path in files:
        relative = path.relative_to(local).as_posix()
        step = _step_of(relative)
        if steps is None or step is None or step in steps:
            chosen.append((relative, path))
    for prefix in ("events/", "index/", ""):
        batch = [
            (r, p)
            for r, p in chosen
            if r.startswith(prefix) and (prefix or not r.startswith(("events/", "index/")))
        ]
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(lambda rp: store.write_bytes(f"{uri}/{rp[0]}", rp[1].read_bytes()), batch)
            )


@dataclass(frozen=True)
class World:
    reference: str
    inference: str
    output: str
    cache: Path

    def run(self, **kwargs) -> JobResult:
        options = {"settings": SETTINGS, "cache_dir": str(self.cache), **kwargs}
        return monitor.run_job(
            reference=self.reference, inference=self.inference, output=self.output, **options
        )


@pytest.fixture
def world(s3_bucket: str, local_trials: LocalTrials, tmp_path: Path) -> World:
    w = World(
        reference=f"{s3_bucket}trials/digits/reference",
        inference=f"{s3_bucket}trials/digits/inference",
        output=f"{s3_bucket}monitoring/digits",
        cache=tmp_path / "cache",
    )
    upload(local_trials.reference, w.reference)
    return w


def objects(prefix: str) -> dict[str, str]:
    return {info.uri: info.etag for info in store.iter_objects(prefix)}


def bookmark(output: str) -> dict | None:
    try:
        return store.read_json(layout.bookmark_uri(output))
    except DataNotFoundError:
        return None


# --------------------------------------------------------------------------- the job


def test_clean_then_shifted_traffic_and_the_bookmark(
    world: World, local_trials: LocalTrials
) -> None:
    # the endpoint's capture writes straight into S3: clean traffic, a job, shifted
    # traffic appended by a restarted capture, the next job
    requests = local_trials.reference.parent
    _write_trial(world.inference, size=8, predict=np.load(requests / "clean.npy"))
    first = world.run(at=T1)
    assert first.status == STATUS_OK and first.job_id == "2026-11-23T17-00-00Z"
    assert (first.first_step, first.last_step, first.requests) == (0, 39, 40)
    assert first.detection_rate is not None and first.detection_rate <= 30
    assert first.baseline_detection_rate is not None and first.baseline_detection_rate <= 30
    assert not first.incident
    assert first.window_test is not None and first.window_test.p_value > 0.01
    assert first.window_test.share.low == 0.0
    if first.window_test.window_rows < 40:  # rows of a class the reference lacks are left out
        assert any("left out" in w for w in first.warnings)
    assert bookmark(world.output)["last_step"] == 39

    _write_trial(world.inference, size=8, predict=np.load(requests / "shifted.npy"))
    second = world.run(at=T2)
    assert (second.first_step, second.last_step, second.requests) == (40, 79, 40)
    assert second.detection_rate is not None and second.detection_rate >= 90
    assert second.incident and second.incident_rule.describe() == "window test p < 0.01"
    assert second.window_p_value is not None and second.window_p_value < 0.01
    assert second.window_test.share.estimate > 0.5  # every row of the window was shifted
    assert second.baseline_splits == 5 and second.baseline_range is not None
    assert second.layers[PENULTIMATE].detection_rate == second.detection_rate
    assert len(second.layers[PENULTIMATE].p_values) == R
    assert bookmark(world.output)["last_step"] == 79
    assert monitor.read_bookmark(world.output).last_step == 79

    # top samples: steps of the window, best (smallest p-value) first, at most 100
    top = second.top_samples
    assert 0 < len(top) <= 100 and all(40 <= s.step <= 79 for s in top)
    assert [s.p_value for s in top] == sorted(s.p_value for s in top)
    assert sum(second.class_counts.values()) == 40
    scores = monitor.load_scores(world.output, second.job_id)
    assert scores.steps.tolist() == list(range(40, 80)) and len(scores.p_value) == 40
    # shifted rows look less like the reference than clean ones
    clean_scores = monitor.load_scores(world.output, first.job_id)
    assert np.median(scores.p_value) < np.median(clean_scores.p_value)

    # the stored document is the returned result, and it is valid JSON of the schema
    stored = store.read_json(layout.results_uri(world.output, second.job_id))
    assert stored["detection_rate"] == second.detection_rate and stored["incident"] is True
    assert stored["window_test"]["p_value"] == second.window_p_value
    assert stored["window_test"]["reference_rows"] == second.window_test.reference_rows
    assert set(stored["window_test"]["share"]) >= {"estimate", "low", "high", "level"}
    assert stored["settings"]["n_samples"] == N and stored["settings"]["layers"] == [PENULTIMATE]

    # nothing new: recorded as insufficient, never as 0 %
    third = world.run(at=T3)
    assert third.status == STATUS_INSUFFICIENT and third.requests == 0
    assert third.detection_rate is None and third.baseline_detection_rate is None
    assert "no new inference requests" in third.reason
    assert bookmark(world.output)["last_step"] == 79

    jobs = monitor.load_jobs(world.output)
    assert [j.job_id for j in jobs] == [first.job_id, second.job_id, third.job_id]


def test_small_window_is_recorded_and_rolls_into_the_next(
    world: World, local_trials: LocalTrials
) -> None:
    upload(local_trials.inference, world.inference, range(0, 12))
    small = world.run(at=T1)
    assert small.status == STATUS_INSUFFICIENT and small.requests == 12
    assert small.detection_rate is None and small.layers[PENULTIMATE].detection_rate is None
    assert "fewer than n_samples=20" in small.reason
    assert bookmark(world.output) is None  # not advanced: these requests are tested next time

    upload(local_trials.inference, world.inference, range(12, 40))
    full = world.run(at=T2)
    assert full.status == STATUS_OK and (full.first_step, full.last_step, full.requests) == (
        0,
        39,
        40,
    )
    assert bookmark(world.output)["last_step"] == 39


def test_rerunning_a_job_id_changes_nothing(world: World, local_trials: LocalTrials) -> None:
    upload(local_trials.inference, world.inference, CLEAN)
    world.run(at=T1)
    before = objects(world.output)
    with pytest.raises(monitor.JobExistsError, match="already exists"):
        world.run(at=T1)
    assert objects(world.output) == before


def test_several_layers_and_all_steps(world: World, local_trials: LocalTrials) -> None:
    upload(local_trials.inference, world.inference)
    world.run(at=T1)  # processes 0..79; bookmark at 79
    again = world.run(at=T2, all_steps=True, layers=["avgpool", "layer3.1"])
    assert (again.first_step, again.last_step, again.requests) == (0, 79, 80)
    assert set(again.layers) == {PENULTIMATE, MID}
    assert again.combined_method == "max-statistic"
    assert again.layers[MID].dimension == 256 * 2 * 2
    # half the window is shifted: clearly above the baseline, if not at 100 %
    assert again.detection_rate is not None and again.baseline_detection_rate is not None
    assert again.detection_rate >= again.baseline_detection_rate + 15
    assert all(layer.detection_rate is not None for layer in again.layers.values())
    assert bookmark(world.output)["last_step"] == 79


def test_two_jobs_at_once_never_share_steps(world: World, local_trials: LocalTrials) -> None:
    upload(local_trials.inference, world.inference, CLEAN)
    ids = [T1, T1, T2, T3]  # two runs of the same job id, two other jobs
    outcomes: list = [None] * len(ids)
    barrier = threading.Barrier(len(ids))

    def go(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = world.run(at=ids[i])
        except monitor.JobExistsError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [o for o in outcomes if isinstance(o, JobResult)]
    assert sum(isinstance(o, monitor.JobExistsError) for o in outcomes) == 1
    assert len(results) == 3 and len({r.job_id for r in results}) == 3
    tested = [r for r in results if r.status == STATUS_OK]
    assert len(tested) == 1 and (tested[0].first_step, tested[0].last_step) == (0, 39)
    assert all(r.requests == 0 for r in results if r is not tested[0])
    assert len(monitor.load_jobs(world.output)) == 3
    assert bookmark(world.output)["last_step"] == 39


def _cli_args(world: World, *extra: str) -> list[str]:
    return [
        "monitor",
        "--reference",
        world.reference,
        "--inference",
        world.inference,
        "--output",
        world.output,
        "--n-samples",
        str(N),
        "--repeats",
        str(R),
        "--permutations",
        str(B),
        "--cache-dir",
        str(world.cache),
        *extra,
    ]


def test_two_processes_at_once_and_the_cli(world: World, local_trials: LocalTrials, capsys) -> None:
    upload(local_trials.inference, world.inference, CLEAN)
    env = {**os.environ, "SMDEBUG_TRAINING_END_DELAY_REFRESH": "0"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ladis_core", *_cli_args(world, "--at", at)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for at in (T1, T2)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    jobs = monitor.load_jobs(world.output)
    assert len(jobs) == 2
    tested = [j for j in jobs if j.status == STATUS_OK]
    assert len(tested) == 1 and (tested[0].first_step, tested[0].last_step) == (0, 39)
    assert any("detection rate" in out for out, _ in outs)

    assert cli.main(_cli_args(world, "--at", T1)) == 0
    assert "already exists" in capsys.readouterr().out


def test_the_incident_level_is_configurable_on_the_command_line(
    world: World, local_trials: LocalTrials, capsys
) -> None:
    upload(local_trials.inference, world.inference, CLEAN)
    assert cli.main(_cli_args(world, "--at", T1, "--alpha-incident", "0.999")) == 0
    out = capsys.readouterr().out
    assert "window test p=" in out and "window test p < 0.999" in out and "look crafted" in out
    (job,) = monitor.load_jobs(world.output)
    # a natural window: p-values spread over (0, 1], so below 0.999 -- an incident at that level
    assert job.incident and job.incident_rule.alpha == 0.999
    assert job.window_p_value < 0.999
    with pytest.raises(SystemExit) as exited:
        cli.main(_cli_args(world, "--at", T2, "--alpha-incident", "1.5"))
    assert exited.value.code == 2
    assert "must be between 0 and 1" in capsys.readouterr().err


def test_a_crashed_job_leaves_the_bookmark_and_its_steps_are_taken_over(
    world: World, local_trials: LocalTrials, s3_env: dict
) -> None:
    upload(local_trials.inference, world.inference, range(0, 30))
    world.run(at=T1)  # steps 0..29, bookmark 29
    upload(local_trials.inference, world.inference, range(30, 60))
    script = f"""
import os
from ladis_core import monitoring as monitor
from ladis_core.monitoring.results import JobSettings
def die(p):
    if p.stage == "detection":
        os._exit(3)  # the process dies between claiming its steps and writing its result
monitor.run_job(reference={world.reference!r}, inference={world.inference!r}, output={world.output!r},
    at={T2!r}, settings=JobSettings(n_samples={N}, n_repeats={R}, n_permutations={B}),
    cache_dir={str(world.cache)!r}, progress=die)
"""
    crashed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SMDEBUG_TRAINING_END_DELAY_REFRESH": "0"},
    )
    assert crashed.returncode == 3, crashed.stderr
    assert not store.exists(layout.results_uri(world.output, "2026-11-23T18-00-00Z"))
    assert bookmark(world.output)["last_step"] == 29
    # its claim is there, but its process is dead: the next job takes the same steps
    resumed = world.run(at=T3)
    assert (resumed.first_step, resumed.last_step) == (30, 59)
    assert bookmark(world.output)["last_step"] == 59


# --------------------------------------------------------------------------- bad input


def _run_cli_in_process(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = cli.main(args)
    err = capsys.readouterr().err.strip()
    if os.environ.get("LADIS_TEST_SHOW_ERRORS"):
        with capsys.disabled():
            print("\n>>>", err.splitlines()[-1] if err else "(no stderr)")
    return code, err


@pytest.fixture
def populated(world: World, local_trials: LocalTrials) -> World:
    upload(local_trials.inference, world.inference, CLEAN)
    world.run(at=T1)
    return world


def _assert_rejected(world: World, args: list[str], capsys, *fragments: str) -> str:
    before = objects(world.output)
    code, err = _run_cli_in_process(args, capsys)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert objects(world.output) == before  # nothing written, bookmark untouched
    return lines[0]


def test_bad_input_nonexistent_uri(populated: World, capsys) -> None:
    args = _cli_args(populated, "--at", T2)
    args[args.index("--inference") + 1] = populated.inference + "-typo"
    _assert_rejected(populated, args, capsys, "inference-typo", "missing or empty")
    args = _cli_args(populated, "--at", T2)
    args[args.index("--output") + 1] = "s3://no-such-bucket-ladis/monitoring/digits"
    code, err = _run_cli_in_process(args, capsys)
    assert code == 2 and err.count("error:") == 1 and "no-such-bucket-ladis" in err, err


def test_bad_input_empty_trial(populated: World, capsys) -> None:
    empty = populated.inference.rsplit("/", 1)[0] + "/empty"
    store.write_bytes(f"{empty}/training_job_end.ts", b"")
    args = _cli_args(populated, "--at", T2)
    args[args.index("--inference") + 1] = empty
    _assert_rejected(populated, args, capsys, "empty")
    # a trial with steps of another mode only (the reference has no PREDICT steps)
    args[args.index("--inference") + 1] = populated.reference
    _assert_rejected(populated, args, capsys, "PREDICT")


def test_bad_input_unknown_layer_lists_the_available_ones(populated: World, capsys) -> None:
    line = _assert_rejected(
        populated,
        _cli_args(populated, "--at", T2, "--layers", "avgpool,layer9"),
        capsys,
        "'layer9'",
        PENULTIMATE,
        MID,
    )
    assert "available layers" in line


def test_bad_input_layer_shapes_differ(populated: World, local_trials: LocalTrials, capsys) -> None:
    other = populated.reference.rsplit("/", 1)[0] + "/other-reference"
    upload(local_trials.other_reference, other)
    args = _cli_args(populated, "--at", T2, "--layers", "layer3.1", "--n-samples", "10")
    args[args.index("--reference") + 1] = other
    # no new steps: the shapes are compared on the newest step of the inference trial
    _assert_rejected(populated, args, capsys, "2304 values", "1024 values", MID)
    upload(local_trials.inference, populated.inference, range(40, 50))
    _assert_rejected(populated, args, capsys, "same model")


def test_bad_input_wrong_credentials(populated: World, capsys, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        code, err = _run_cli_in_process(_cli_args(populated, "--at", T2), capsys)
    assert code == 2 and err.count("error:") == 1 and "not-the-secret" not in err
    assert "denied" in err or "credentials" in err.lower() or "signature" in err.lower(), err
    assert len(monitor.load_jobs(populated.output)) == 1
    assert bookmark(populated.output)["last_step"] == 39


def test_bad_input_s3_unreachable(populated: World, capsys, monkeypatch) -> None:
    from ladis_core.devtools.s3server import find_free_port

    with monkeypatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{find_free_port()}")
        code, err = _run_cli_in_process(_cli_args(populated, "--at", T2), capsys)
    assert code == 2 and err.count("error:") == 1 and "cannot reach S3" in err, err
    assert len(monitor.load_jobs(populated.output)) == 1


def test_bad_input_settings(populated: World, capsys) -> None:
    _assert_rejected(populated, _cli_args(populated, "--at", T2, "--alpha", "1.5"), capsys, "alpha")
    _assert_rejected(populated, _cli_args(populated, "--at", "yesterday"), capsys, "ISO-8601")
    # more rows asked for than the reference has (240 rows; the baseline needs 2n)
    _assert_rejected(
        populated, _cli_args(populated, "--at", T2, "--n-samples", "150"), capsys, "240 rows"
    )


# --------------------------------------------------------------------------- schedule


def test_every_runs_bounded_jobs_and_survives_a_failing_one(
    world: World, local_trials: LocalTrials, capsys
) -> None:
    upload(local_trials.inference, world.inference, CLEAN)
    code, _ = _run_cli_in_process(_cli_args(world, "--every", "1s", "--max-runs", "2"), capsys)
    assert code == 0
    jobs = monitor.load_jobs(world.output)
    assert len(jobs) == 2 and jobs[0].status == STATUS_OK and jobs[1].requests == 0
    assert jobs[1].job_id > jobs[0].job_id
    # a schedule whose jobs fail keeps going, and says so
    code, err = _run_cli_in_process(
        _cli_args(world, "--every", "1s", "--max-runs", "2", "--layers", "nope"), capsys
    )
    assert code == 2


# --------------------------------------------------------------------------- CloudWatch


class _FakeCloudWatch(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append((self.headers.get("X-Amz-Target", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def cloudwatch(monkeypatch):
    _FakeCloudWatch.received = []
    server = HTTPServer(("127.0.0.1", 0), _FakeCloudWatch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", f"http://127.0.0.1:{server.server_port}")
    try:
        yield _FakeCloudWatch.received
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_go_to_cloudwatch_only_when_asked(
    world: World, local_trials: LocalTrials, cloudwatch
) -> None:
    upload(local_trials.inference, world.inference, CLEAN)
    world.run(at=T1)
    assert cloudwatch == []  # nothing sent without --cloudwatch
    upload(local_trials.inference, world.inference, SHIFTED)
    result = world.run(at=T2, publishers=[cloudwatch_publisher()], endpoint="digits")
    assert len(cloudwatch) == 1
    target, body = cloudwatch[0]
    assert target.endswith("PutMetricData")
    sent = json.loads(body)
    assert sent["Namespace"] == "LADIS"
    values = {m["MetricName"]: m["Value"] for m in sent["MetricData"] if len(m["Dimensions"]) == 1}
    assert values["DetectionRate"] == result.detection_rate
    assert values["BaselineDetectionRate"] == result.baseline_detection_rate
    assert values["Requests"] == 40
    assert all(
        m["Dimensions"][0] == {"Name": "Endpoint", "Value": "digits"} for m in sent["MetricData"]
    )
    # a window too small to test sends its request count but no rate (no false 0 %)
    world.run(at=T3, publishers=[cloudwatch_publisher()])
    names = {m["MetricName"] for m in json.loads(cloudwatch[1][1])["MetricData"]}
    assert names == {"Requests"}


# --------------------------------------------------------------------------- SageMaker Processing


def test_processing_container_mode(
    world: World, local_trials: LocalTrials, tmp_path: Path, capsys
) -> None:
    upload(local_trials.inference, world.inference, CLEAN)
    config = {
        "ProcessingJobName": "ladis-monitor-1",
        "AppSpecification": {
            "ImageUri": "ladis:latest",
            "ContainerArguments": ["--repeats", str(R)],
        },
        "Environment": {
            "LADIS_N_SAMPLES": "20.0",
            "LADIS_PERMUTATIONS": "2e2",
            "LADIS_ALPHA": "0.05",
            "LADIS_CLASS_MATCHED": "False",
            "publish_cloudwatch_metrics": "Disabled",
            "sagemaker_endpoint_name": "digits-prod",
            "end_time": "2026-11-23T17:00:00Z",
        },
        "ProcessingInputs": [
            {
                "InputName": "reference",
                "S3Input": {"S3Uri": world.reference, "LocalPath": "/opt/ml/processing/reference"},
            },
            {
                "InputName": "inference",
                "S3Input": {"S3Uri": world.inference, "LocalPath": "/opt/ml/processing/inference"},
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "monitoring",
                    "S3Output": {"S3Uri": world.output, "LocalPath": "/opt/ml/processing/output"},
                }
            ]
        },
    }
    path = tmp_path / "processingjobconfig.json"
    path.write_text(json.dumps(config))
    (tmp_path / "output").mkdir()
    env = {
        **os.environ,
        "LADIS_PROCESSING_CONFIG": str(path),
        "LADIS_PROCESSING_MESSAGE": str(tmp_path / "output" / "message"),
        "LADIS_CACHE_DIR": str(world.cache),
        "SMDEBUG_TRAINING_END_DELAY_REFRESH": "0",
        **config["Environment"],  # SageMaker sets the Environment map as variables too
    }
    done = subprocess.run(
        [sys.executable, "-m", "ladis_core.processing"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (job,) = monitor.load_jobs(world.output)
    assert job.job_id == "2026-11-23T17-00-00Z" and job.endpoint == "digits-prod"
    assert (
        job.settings.n_samples == 20
        and job.settings.n_permutations == 200
        and job.settings.n_repeats == R
    )
    assert job.settings.class_matched is False and job.status == STATUS_OK

    env["LADIS_REPEATS"] = "many"
    assert processing.main(["--at", T2], environ=env) == 2
    assert "LADIS_REPEATS='many'" in capsys.readouterr().err
    assert "LADIS_REPEATS" in (tmp_path / "output" / "message").read_text()
    assert len(monitor.load_jobs(world.output)) == 1


def test_local_folders_work_too(local_trials: LocalTrials, tmp_path: Path) -> None:
    result = monitor.run_job(
        reference=str(local_trials.reference),
        inference=str(local_trials.inference),
        output=str(tmp_path / "monitoring"),
        at=datetime(2026, 11, 23, 17, tzinfo=UTC),
        settings=SETTINGS,
    )
    assert result.requests == 80 and result.endpoint == "monitoring"
    assert monitor.read_bookmark(str(tmp_path / "monitoring")).last_step == 79
    with pytest.raises(InputError, match="available layers"):
        monitor.run_job(
            reference=str(local_trials.reference),
            inference=str(local_trials.inference),
            output=str(tmp_path / "monitoring"),
            layers=["fc9"],
            settings=SETTINGS,
        )
    with pytest.raises((DataNotFoundError, StorageError)):
        monitor.run_job(
            reference=str(tmp_path / "nope"),
            inference=str(local_trials.inference),
            output=str(tmp_path / "monitoring"),
            settings=SETTINGS,
        )
