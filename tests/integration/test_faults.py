"""Fault injection against a real SeaweedFS on a free loopback port (issue 11).

The S3 server is SIGKILLed in the middle of a monitoring job, of a capture upload and of
a report export, then restarted on the same data; objects are corrupted and truncated;
the disk fills up during a trial sync; two monitoring processes race for one window.
Each time: a one-line error naming what failed, and nothing lost or written twice.

"In the middle" is made exact, not timed: the process under test is paused (SIGSTOP) on
a progress line it prints, the server is killed, and the process is resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from ladis_core import capture, store, trials
from ladis_core.devtools.s3server import LocalS3Server, find_free_port
from ladis_core.errors import CorruptObjectError, LocalDiskError, StorageError
from ladis_core.progress import Progress
from ladis_core.store import layout
from tests.support.faults import small_disk
from tests.support.trials import tiny_model, write_trial

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-23T05:00:00Z"
#: small statistics settings: the test is about faults, not power
JOB_OPTIONS = ["--n-samples", "10", "--repeats", "5", "--permutations", "49", "--seed", "7"]


class World:
    """A SeaweedFS of this module's own with a reference and an inference trial."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = LocalS3Server(root / "s3", port=find_free_port(), die_with_parent=True)
        self.bucket = "s3://ladis/"
        self.reference = self.bucket + "trials/ep/reference"
        self.inference = self.bucket + "trials/ep/inference"

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION")
        }
        env.update(self.server.environment())
        env.update(PYTHONPATH=str(REPO), SMDEBUG_LOG_LEVEL="error")
        return env

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no flush, as a crash or the OOM killer."""
        pid = self.server.status().pid
        assert pid is not None
        process = psutil.Process(pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)  # reaped: the restart sees it gone

    def restart(self) -> None:
        self.server.start(timeout_s=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = World(tmp_path_factory.mktemp("faults"))
    built.server.start(timeout_s=60)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in built.env.items():
            if name.startswith("AWS_"):
                patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
            patch.delenv(name, raising=False)
        generator = torch.Generator().manual_seed(3)
        batches = [torch.rand(10, 3, 2, 2, generator=generator) for _ in range(6)]
        capture.capture_reference(tiny_model(), batches, built.reference, include_inputs=True)
        write_trial(built.inference, 30, first_value=0.01)
        try:
            yield built
        finally:
            built.server.stop()


@pytest.fixture
def aws(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The world's server in this process's environment, and running."""
    if not world.server.status().running:
        world.restart()
    for name, value in world.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return world


def _paused_run(
    command: list[str], *, env: dict[str, str], pause_on: str, while_paused: Callable[[], None]
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; when a line of its stderr contains ``pause_on``, SIGSTOP it, call
    ``while_paused`` and SIGCONT it. Fails if the line never comes."""
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: list[str] = []
    paused = False
    assert process.stderr is not None
    for line in process.stderr:
        seen.append(line)
        if pause_on in line:
            process.send_signal(signal.SIGSTOP)
            try:
                while_paused()
            finally:
                process.send_signal(signal.SIGCONT)
            paused = True
            break
    out, err = process.communicate(timeout=300)
    assert paused, f"never printed {pause_on!r}:\n{''.join(seen)[-3000:]}"
    return subprocess.CompletedProcess(command, process.returncode, out, "".join(seen) + err)


def _monitor(world: World, output: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "ladis_core", *extra, "monitor",
        "--reference", world.reference, "--inference", world.inference,
        "--output", output, "--endpoint", "ep", "--at", AT, *JOB_OPTIONS,
        "--cache-dir", str(world.root / "cache"),
    ]  # fmt: skip


def _comparable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("started_at", "finished_at")}


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


# --------------------------------------------------------------------------- SIGKILL mid-job


def test_s3_killed_mid_job_exits_2_keeps_the_bookmark_and_a_rerun_matches(aws: World):
    calm = aws.bucket + "monitoring/calm"
    undisturbed = subprocess.run(
        _monitor(aws, calm), cwd=REPO, env=aws.env, capture_output=True, text=True, timeout=300
    )
    assert undisturbed.returncode == 0, undisturbed.stderr[-2000:]
    expected = store.read_json(f"{calm}/2026-11-23T05-00-00Z/results.json")

    killed = aws.bucket + "monitoring/killed"
    run = _paused_run(
        _monitor(aws, killed, "-v"),
        env=aws.env,
        pause_on="baseline: 0/",  # the window is loaded; nothing is written yet
        while_paused=aws.kill,
    )
    assert run.returncode == 2, run.stderr[-3000:]
    assert "cannot reach S3" in _error_line(run.stderr)
    # -v shows boto's own debug traces; what the job says is its last line
    assert run.stderr.strip().splitlines()[-1].startswith("error: cannot reach S3")
    aws.restart()
    assert not store.exists(layout.bookmark_uri(killed))  # the bookmark did not move
    assert not store.exists(f"{killed}/2026-11-23T05-00-00Z/results.json")

    rerun = subprocess.run(
        _monitor(aws, killed), cwd=REPO, env=aws.env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    again = store.read_json(f"{killed}/2026-11-23T05-00-00Z/results.json")
    assert _comparable(again) == _comparable(expected)


# --------------------------------------------------------------------------- SIGKILL mid-upload


def test_s3_killed_mid_capture_upload_loses_no_step_and_writes_none_twice(aws: World):
    uri = aws.bucket + "trials/upload/inference"
    cap = capture.ServingCapture(tiny_model(), uri, include_inputs=True, upload_interval_s=0)
    values = [0.02 * (i + 1) for i in range(12)]
    for value in values[:8]:
        cap.record(torch.full((1, 3, 2, 2), value))

    def kill_after_three(progress: Progress) -> None:
        if progress.stage == "upload" and progress.done == 3:
            aws.kill()

    with pytest.raises(StorageError, match="cannot reach S3"):
        cap.flush(progress=kill_after_three)
    for value in values[8:]:  # requests go on while the store is down
        cap.record(torch.full((1, 3, 2, 2), value))
    aws.restart()
    cap.close()
    data = trials.load_trial(uri, mode="PREDICT", include_inputs=True)
    assert data.steps.tolist() == list(range(12))
    assert np.allclose(data.inputs[:, 0, 0, 0], values, atol=1e-6)
    keys = [info.uri for info in store.iter_objects(uri)]
    assert len(keys) == len(set(keys))
    assert sum(k.endswith(".tfevents") for k in keys) == 12


def test_an_endpoint_killed_with_steps_staged_hands_them_to_its_successor(aws: World, tmp_path):
    """The other half of "nothing lost": the S3 server stays down until the endpoint is
    SIGKILLed too; the next endpoint publishes what the first staged."""
    uri = aws.bucket + "trials/staged/inference"
    script = (
        "import os, signal, sys, torch\n"
        "from ladis_core import capture\n"
        "from tests.support.trials import tiny_model\n"
        f"cap = capture.ServingCapture(tiny_model(), {uri!r}, include_inputs=True,"
        " upload_interval_s=0)\n"
        "for i in range(5):\n"
        "    cap.record(torch.full((1, 3, 2, 2), 0.1 * (i + 1)))\n"
        "cap.wait_until_staged()\n"
        "print('recorded', flush=True)\n"
        "sys.stdin.readline()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**aws.env, "LADIS_CAPTURE_STAGING": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline().strip() == "recorded"
    aws.kill()
    process.communicate("go\n", timeout=60)
    assert process.returncode == -signal.SIGKILL
    aws.restart()
    os.environ["LADIS_CAPTURE_STAGING"] = str(tmp_path)
    try:
        write_trial(uri, 1, first_value=0.6, include_inputs=True)
    finally:
        del os.environ["LADIS_CAPTURE_STAGING"]
    data = trials.load_trial(uri, mode="PREDICT", include_inputs=True)
    assert data.steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert np.allclose(data.inputs[:, 0, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], atol=1e-6)


# --------------------------------------------------------------------------- SIGKILL mid-export


def test_s3_killed_mid_report_export_exits_2_and_leaves_the_old_report(aws: World, tmp_path):
    monitoring = aws.bucket + "monitoring/report"
    job = subprocess.run(
        _monitor(aws, monitoring), cwd=REPO, env=aws.env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-2000:]
    out = tmp_path / "incident.json"
    command = [
        sys.executable, "-m", "ladis_core", "report", "--job",
        f"{monitoring}/2026-11-23T05-00-00Z", "--format", "json", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    calm = subprocess.run(command, cwd=REPO, env=aws.env, capture_output=True, text=True)
    assert calm.returncode == 0, calm.stderr[-2000:]
    before = out.read_bytes()
    run = _paused_run(command, env=aws.env, pause_on="report: jobs: 0/", while_paused=aws.kill)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "S3" in _error_line(run.stderr) and "Traceback" not in run.stderr
    assert out.read_bytes() == before  # the earlier export is whole, not truncated
    aws.restart()
    again = subprocess.run(command, cwd=REPO, env=aws.env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    first, second = json.loads(before), json.loads(out.read_bytes())
    first.pop("generated_at", None), second.pop("generated_at", None)
    assert first == second


# --------------------------------------------------------------------------- corrupt objects


@pytest.mark.parametrize(
    ("what", "damage"),
    [
        ("event", lambda data: data[: len(data) // 2]),  # truncated
        ("event", lambda data: data[:30] + b"\xff" * 40 + data[70:]),  # garbled, same size
        ("index", lambda data: data[: len(data) // 2]),  # truncated JSON
        ("index", lambda data: b"\x00" * len(data)),
    ],
    ids=["event-truncated", "event-garbled", "index-truncated", "index-zeroed"],
)
def test_corrupt_objects_are_named_in_one_clear_error(aws: World, tmp_path, what, damage):
    uri = aws.bucket + f"trials/corrupt-{what}-{tmp_path.name}/inference"
    write_trial(uri, 3)
    suffix = ".tfevents" if what == "event" else ".json"
    key = sorted(
        i.uri
        for i in store.iter_objects(uri)
        if i.uri.endswith(suffix) and "/000000000001" in i.uri
    )[0]
    store.write_bytes(key, damage(store.read_bytes(key)))
    with pytest.raises(CorruptObjectError) as raised:
        trials.load_trial(uri, mode="PREDICT", cache_dir=tmp_path / "cache")
    assert key in str(raised.value) and "\n" not in str(raised.value)


# --------------------------------------------------------------------------- disk full


@pytest.mark.parametrize("inject", [False, True], ids=["tmpfs-or-injected", "injected"])
def test_a_full_disk_during_a_sync_is_clear_and_the_cache_stays_usable(
    aws: World, tmp_path, monkeypatch, inject
):
    uri = aws.bucket + f"trials/disk-{'i' if inject else 't'}/inference"
    local = tmp_path / "trial"
    write_trial(local, 40)
    store.upload_dir(local, uri)
    expected = trials.load_trial(str(local), mode="PREDICT").layers["avgpool_output_0"]
    with small_disk(tmp_path / "disk", size_kib=24, monkeypatch=monkeypatch, inject=inject) as disk:
        cache = disk.path / "cache"
        with pytest.raises(LocalDiskError, match="No space left on device.*free some space"):
            trials.load_trial(uri, mode="PREDICT", cache_dir=cache)
        assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
        disk.grow(4096)  # room is made (what `cache prune` or an operator does)
        fetched: list[Progress] = []
        data = trials.load_trial(uri, mode="PREDICT", cache_dir=cache, progress=fetched.append)
        assert np.array_equal(data.layers["avgpool_output_0"], expected)
        totals: dict[str, int] = {}
        for p in fetched:
            if p.stage in ("index", "download"):
                totals[p.stage] = p.total
        # 80 objects in all; what the failed run fetched whole is used, not fetched again
        assert 0 < sum(totals.values()) < 80


# --------------------------------------------------------------------------- two jobs, one window


def test_two_monitoring_processes_on_one_window_write_exactly_one_result(aws: World):
    output = aws.bucket + "monitoring/twins"
    processes = [
        subprocess.Popen(
            _monitor(aws, output),
            cwd=REPO,
            env=aws.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    assert sorted(code for code, _, _ in results) == [0, 0], results
    names = sorted(
        i.uri.rsplit("/", 2)[-2]
        for i in store.iter_objects(output)
        if i.uri.endswith("results.json")
    )
    assert names == ["2026-11-23T05-00-00Z"]
    said = " ".join(out + err for _, out, err in results)
    assert "already" in said  # the second one says the window was done, and why
