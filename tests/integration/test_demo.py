"""The demo world, built for real: a real SeaweedFS, real training, real smdebug trials,
requests through the real HTTP endpoint and the real monitoring job (the "tiny" preset:
16×16 digits, 3 hours of 110 requests)."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ladis_core import cli, demo, store, trials
from ladis_core.demo import traffic as demo_traffic
from ladis_core.monitoring.results import JobResult
from ladis_core.store import layout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_world(s3_server, tmp_path_factory):
    """A tiny world in its own bucket, built once for the module."""
    env = s3_server.environment()
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.setenv("LADIS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        world = s3_server.create_bucket(f"demo-{uuid.uuid4().hex[:12]}")
        stages: list[str] = []
        summary = demo.build_world(
            world, options=demo.DemoOptions.tiny(), progress=lambda p: stages.append(p.stage)
        )
        yield world, summary, stages


def _objects(world: str) -> dict[str, str]:
    return {info.uri: info.etag for info in store.iter_objects(world)}


def test_tiny_world_holds_every_part(tiny_world, s3_env) -> None:
    world, summary, stages = tiny_world
    options = demo.DemoOptions.tiny()
    endpoint = options.endpoint
    # progress was reported for every stage
    for stage in (
        "check",
        "data",
        "train",
        "capture",
        "traffic",
        "requests",
        "monitor",
        "experiment",
        "done",
    ):
        assert stage in stages
    # the model in the layout the endpoint loads, and the natural pool
    assert store.exists(layout.join(layout.model_uri(world, endpoint), "model.pt"))
    spec = json.loads(
        store.read_bytes(layout.join(layout.model_uri(world, endpoint), "model.json"))
    )
    assert spec["architecture"] == "resnet18" and spec["class_names"] == [str(i) for i in range(10)]
    natural = np.load(io.BytesIO(store.read_bytes(layout.dataset_uri(world, endpoint))))
    assert natural["images"].dtype == np.float32 and natural["images"].shape[1:] == (3, 16, 16)
    assert natural["labels"].dtype == np.int64 and len(natural["labels"]) == summary.split["test"]
    assert list(natural["class_names"]) == summary.classes

    # the reference: EVAL steps with inputs, the residual blocks asked for, penultimate, outputs
    reference = layout.reference_trial_uri(world, endpoint)
    names = trials.list_layers(reference, mode="EVAL")
    assert names == [
        "layer3.1_output_0",
        "layer4.1_output_0",
        "avgpool_output_0",
        "ResNet_output_0",
    ]
    ref = trials.load_trial(reference, mode="EVAL", layers=["avgpool"])
    assert len(ref) == summary.split["validation"]

    # one step per request, each with its provenance
    inference = layout.inference_trial_uri(world, endpoint)
    total = sum(h.requests for h in summary.hours)
    assert total == 3 * 110
    assert trials.last_step(inference, mode="PREDICT") == total - 1
    provenance = trials.load_provenance(layout.provenance_uri(world, endpoint))
    assert sorted(provenance) == list(range(total))
    inf = trials.load_trial(inference, mode="PREDICT", layers=["avgpool"], include_inputs=True)
    for step in (0, total // 2, total - 1):
        record = provenance[step]
        assert set(record) >= {"step", "source_index", "true_label", "attack", "epsilon", "hour"}
        assert record["true_label"] == int(natural["labels"][record["source_index"]])
        sent = inf.inputs[int(np.flatnonzero(inf.steps == step)[0])]
        original = natural["images"][record["source_index"]]
        gap = np.abs(sent - original).max()
        if record["attack"] == "none":
            assert gap == 0.0
        else:
            assert 0.0 < gap <= record["epsilon"] + 1e-6

    # the story: natural, natural, then a fully adversarial hour at the small ε
    assert [h.story for h in summary.hours] == ["natural", "natural", "PGD ε=8/255"]
    assert [h.adversarial_requests for h in summary.hours] == [0, 0, 110]
    attacked = [r for r in provenance.values() if r["attack"] != "none"]
    assert {r["hour"] for r in attacked} == {options.job_id(2)} and len(attacked) == 110

    # one job per hour, at the simulated hour's end, on a fixed date
    monitoring = layout.monitoring_uri(world, endpoint)
    assert [h.job_id for h in summary.hours] == [
        "2026-11-23T01-00-00Z",
        "2026-11-23T02-00-00Z",
        "2026-11-23T03-00-00Z",
    ]
    for hour in summary.hours:
        job = JobResult.from_dict(store.read_json(layout.results_uri(monitoring, hour.job_id)))
        assert job.requests == 110 and job.status == "ok"
        assert job.detection_rate == hour.detection_rate
        assert list(job.layers) == ["avgpool_output_0"]

    # attacks and the experiment: columns, layers (input first), rates in range, saved
    assert (
        summary.attacks[0]["attack"] == "pgd" and 0.0 <= summary.attacks[0]["success_rate"] <= 100.0
    )
    assert summary.test_accuracy > 70.0
    experiment = summary.experiment
    assert experiment is not None
    assert experiment.columns == ["baseline", "natural", "PGD ε=8/255"]
    assert experiment.layers == ["input", *names]
    assert all(
        0.0 <= experiment.rates[c][n] <= 100.0
        for c in experiment.columns
        for n in experiment.layers
    )
    saved = store.read_json(layout.experiment_uri(world, endpoint))
    assert saved["rates"] == experiment.rates
    assert "input" in experiment.table() and "combined" in experiment.table()

    # the marker, written last, records what was built
    marker = store.read_json(demo.marker_uri(world, endpoint))
    assert marker["test_accuracy"] == summary.test_accuracy
    assert marker["options"] == options.plan()
    assert demo.load_summary(world, endpoint).hours == summary.hours
    note = summary.closing_note()
    for text in ("test accuracy", "success", "2026-11-23T03-00-00Z", "layer experiment"):
        assert text in note


def test_rerun_skips_a_complete_world(tiny_world, s3_env, capsys) -> None:
    world, summary, _ = tiny_world
    before = _objects(world)
    again = demo.build_world(world, options=demo.DemoOptions.tiny())
    assert again.skipped == ["everything (the world is complete)"]
    assert again.hours == summary.hours and again.test_accuracy == summary.test_accuracy
    # the CLI on the same world: exit 0, the closing note, nothing written
    assert cli.main(["demo", "--world", world, "--tiny"]) == 0
    assert "2026-11-23T03-00-00Z" in capsys.readouterr().out
    assert _objects(world) == before
    # other options on a complete world: a clear refusal, nothing touched
    assert cli.main(["demo", "--world", world, "--tiny", "--seed", "1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert _objects(world) == before


def test_an_interrupted_world_is_resumed(tiny_world, s3_env) -> None:
    """Without the marker the world is incomplete: stages present are skipped; traffic
    captured after the last finished job (an hour cut short) is replayed from hour 1,
    sending the same requests, so the jobs see what they saw before."""
    world, summary, _ = tiny_world
    options = demo.DemoOptions.tiny()
    monitoring = layout.monitoring_uri(world, options.endpoint)
    store.delete(demo.marker_uri(world, options.endpoint))
    store.delete(layout.experiment_uri(world, options.endpoint))
    store.delete(layout.results_uri(monitoring, options.job_id(2)))
    resumed = demo.build_world(world, options=options)
    assert {"training", "dataset", "reference capture"} <= set(resumed.skipped)
    assert "traffic" not in resumed.skipped
    assert [h.requests for h in resumed.hours] == [h.requests for h in summary.hours]
    assert [h.adversarial_requests for h in resumed.hours] == [0, 0, 110]
    provenance = trials.load_provenance(layout.provenance_uri(world, options.endpoint))
    assert sorted(provenance) == list(range(330))  # replayed from step 0, nothing doubled
    assert store.exists(demo.marker_uri(world, options.endpoint))


def _image_folder(root: Path, *, per_class: int) -> Path:
    """Three classes that differ in brightness and texture, as small PNG files."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["circles", "stripes", "noise"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            base = rng.random((20, 20)) * 0.3 + 0.3 * c
            if c == 1:
                base[::4] += 0.4
            pixels = (np.clip(base, 0, 1) * 255).astype(np.uint8)
            Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(root / name / f"{i:03d}.png")
    return root


def test_image_folder_world(s3_bucket, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LADIS_CACHE_DIR", str(tmp_path / "cache"))
    folder = _image_folder(tmp_path / "shapes", per_class=40)
    options = demo.DemoOptions.tiny(
        endpoint="shapes-resnet18",
        data_dir=str(folder),
        fractions=(0.4, 0.35, 0.25),
        n_samples=20,
        requests_per_hour=(25, 25),
        epochs=1,
        n_repeats=10,
        n_permutations=100,
        experiment_repeats=10,
    )
    summary = demo.build_world(s3_bucket, options=options)
    assert summary.classes == ["circles", "noise", "stripes"]
    assert summary.input_shape == [3, 16, 16]
    assert summary.data_source == str(folder)
    assert len(summary.hours) == 3 and all(h.requests == 25 for h in summary.hours)
    assert store.exists(demo.marker_uri(s3_bucket, "shapes-resnet18"))
    spec = json.loads(
        store.read_bytes(layout.join(layout.model_uri(s3_bucket, "shapes-resnet18"), "model.json"))
    )
    assert spec["num_classes"] == 3 and spec["class_names"] == ["circles", "noise", "stripes"]


def test_bad_inputs_fail_clearly_and_write_nothing(
    s3_server, s3_bucket, tmp_path, capsys, monkeypatch
) -> None:
    # an image folder without images
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    (empty / "cats" / "readme.txt").write_text("no images here")
    assert cli.main(["demo", "--world", s3_bucket, "--tiny", "--data", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no images found" in err and str(empty) in err
    assert not any(info.uri.endswith(demo.MARKER_NAME) for info in store.iter_objects(s3_bucket))

    # a bucket holding something else
    other = s3_server.create_bucket(f"other-{uuid.uuid4().hex[:12]}")
    store.write_bytes(layout.join(other, "photos", "holiday.jpg"), b"jpeg bytes")
    assert cli.main(["demo", "--world", other, "--tiny"]) == 2
    err = capsys.readouterr().err
    assert "holds no LADIS world" in err and "photos" in err
    assert [info.uri for info in store.iter_objects(other)] == [
        layout.join(other, "photos", "holiday.jpg")
    ]

    # a GPU asked for where there is none
    if not torch.cuda.is_available():
        assert cli.main(["demo", "--world", s3_bucket, "--tiny", "--device", "cuda"]) == 2
        assert "CUDA" in capsys.readouterr().err
        assert store.list_objects(s3_bucket) == []

    # S3 that cannot be reached (nothing listens on the port): a clear message, no secret
    from ladis_core.devtools.s3server import find_free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{find_free_port()}")
    assert cli.main(["demo", "--bucket", "nowhere", "--tiny"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach S3" in err
    assert s3_server.credentials.secret_key not in err


# --------------------------------------------------------------------------- pure helpers


def test_default_story_spreads_the_incidents() -> None:
    small, large = 8 / 255, 16 / 255
    day = demo.default_story(24, small_epsilon=small, large_epsilon=large)
    attacked = {i: w.describe() for i, w in enumerate(day) if w.adversarial}
    assert attacked == {
        5: "PGD ε=8/255",
        10: "30% PGD ε=16/255",
        14: "PGD ε=16/255",
        19: "FGSM ε=16/255",
    }
    assert not day[0].adversarial and not day[-1].adversarial
    assert [
        w.adversarial for w in demo.default_story(3, small_epsilon=small, large_epsilon=large)
    ] == [False, False, True]
    assert not any(
        w.adversarial for w in demo.default_story(2, small_epsilon=small, large_epsilon=large)
    )


def test_hour_plans_are_fixed_by_seed_and_hour() -> None:
    options = demo.DemoOptions.full()
    a_sources, a_mask = demo_traffic._hour_plan(options, 10, 450)
    b_sources, b_mask = demo_traffic._hour_plan(options, 10, 450)
    assert np.array_equal(a_sources, b_sources) and np.array_equal(a_mask, b_mask)
    assert 200 <= len(a_sources) <= 300
    assert len(set(a_sources.tolist())) == len(a_sources)  # no image twice in one window
    assert a_mask.sum() == round(0.3 * len(a_sources))  # hour 10 is the contaminated one
    other_sources, _ = demo_traffic._hour_plan(demo.DemoOptions.full(seed=1), 10, 450)
    assert not np.array_equal(a_sources[:50], other_sources[:50])
    # the count and the mask do not depend on the pool size
    assert np.array_equal(demo_traffic._hour_plan(options, 10, 10_000)[1], a_mask)


def test_options_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="n_samples"):
        demo.DemoOptions(requests_per_hour=(50, 60))
    with pytest.raises(ValueError, match="endpoint"):
        demo.DemoOptions(endpoint="no spaces/please")
    with pytest.raises(ValueError, match="story"):
        demo.DemoOptions(hours=2, story=(demo.TrafficWindow(),))
    with pytest.raises(ValueError, match="share"):
        demo.TrafficWindow("pgd", 0.03, 0.0)
    assert demo.DemoOptions.quick().plan() != demo.DemoOptions.full().plan()
    # how fast a world is built does not change what it holds
    assert (
        demo.DemoOptions.full(concurrency=3, torch_threads=1).plan()
        == demo.DemoOptions.full().plan()
    )
