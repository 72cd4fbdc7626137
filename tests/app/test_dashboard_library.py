"""The library parts behind the dashboard: t-SNE (``ladis_core.viz.embedding``), world
discovery (``ladis_core.monitoring.world``) and on-demand tests (``ladis_core.monitoring.ondemand``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from ladis_core import store
from ladis_core.errors import InputError, LadisError
from ladis_core.monitoring import ondemand, triage, world
from ladis_core.monitoring.results import JobResult
from ladis_core.store import layout
from ladis_core.viz.embedding import subsample_rows, tsne_2d
from tests.support.factories import make_job

# --------------------------------------------------------------------------- t-SNE


def _clusters(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "reference": rng.normal(0.0, 1.0, size=(120, 20)).astype(np.float32),
        "inference": rng.normal(6.0, 1.0, size=(60, 20)).astype(np.float32),
    }


def test_tsne_is_reproducible_and_maps_points_back_to_rows() -> None:
    groups = _clusters()
    first = tsne_2d(groups, seed=3, max_points=1000)
    again = tsne_2d(groups, seed=3, max_points=1000)
    np.testing.assert_array_equal(first.coords, again.coords)
    assert first.coords.shape == (180, 2) and len(first) == 180
    coords, rows = first.of_group("inference")
    assert coords.shape == (60, 2)
    np.testing.assert_array_equal(np.sort(rows), np.arange(60))
    assert first.available == {"reference": 120, "inference": 60}


def test_tsne_keeps_separated_groups_apart() -> None:
    embedding = tsne_2d(_clusters(), seed=0)
    labels = (embedding.group == "inference").astype(int)
    # each point's 5 nearest neighbours in the picture come from its own group
    d = ((embedding.coords[:, None, :] - embedding.coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    neighbours = np.argsort(d, axis=1)[:, :5]
    purity = (labels[neighbours] == labels[:, None]).mean()
    assert purity > 0.95


def test_subsampling_is_bounded_deterministic_and_keeps_small_groups() -> None:
    picks = subsample_rows({"reference": 5000, "inference": 250}, max_points=1000, seed=1)
    assert sum(len(v) for v in picks.values()) <= 1000
    assert len(picks["inference"]) == 250  # a small group is never drowned
    again = subsample_rows({"reference": 5000, "inference": 250}, max_points=1000, seed=1)
    np.testing.assert_array_equal(picks["reference"], again["reference"])
    assert np.all(np.diff(picks["reference"]) > 0)
    embedding = tsne_2d(
        {"a": np.zeros((900, 4)) + np.arange(900)[:, None], "b": np.ones((30, 4))},
        seed=0,
        max_points=200,
        pca_dims=None,
    )
    assert len(embedding) <= 200


def test_tsne_rejects_groups_of_different_width() -> None:
    with pytest.raises(InputError, match="same number of features"):
        tsne_2d({"a": np.zeros((10, 3)), "b": np.zeros((10, 4))})
    with pytest.raises(InputError, match="has no rows"):
        tsne_2d({"a": np.zeros((0, 3))})


# --------------------------------------------------------------------------- world


def _job(job_id: str, endpoint: str = "cats") -> JobResult:
    return make_job(
        job_id=job_id,
        endpoint=endpoint,
        rate=50.0,
        baseline=5.0,
        requests=10,
        first_step=0,
        layers={},
        incident=True,
        reference="r",
        inference="i",
    )


def test_world_discovery_on_a_local_folder(tmp_path: Path) -> None:
    uri = str(tmp_path / "world") + "/"
    monitoring = layout.monitoring_uri(uri, "cats")
    ids = ["2026-01-01T02-00-00Z", "2026-01-01T01-00-00Z"]
    for job_id in ids:
        store.write_bytes(layout.results_uri(monitoring, job_id), _job(job_id).to_json().encode())
    store.write_bytes(
        layout.join(monitoring, "2026-01-01T03-00-00Z", "scores.json"), b"{}"
    )  # unfinished
    store.write_bytes(layout.join(monitoring, "_state", "results.json"), b"{}")  # not a job
    store.write_bytes(layout.join(uri, "trials", "dogs", "reference", "x"), b"")
    triage.add_verdict(monitoring, ids[0], verdict="dismissed", analyst="Ada", note="")

    assert world.list_endpoints(uri) == ["cats", "dogs"]
    index = world.job_index(uri, "cats")
    assert index.job_ids == tuple(sorted(ids)) and index.verdict_counts == {ids[0]: 1}
    jobs = world.load_jobs(uri, "cats", job_ids=index.job_ids)
    assert [j.job_id for j in jobs] == sorted(ids)
    assert [j.job_id for j in world.load_jobs(uri, "cats")] == sorted(ids)
    info = world.describe_world(uri)
    assert info.endpoint("cats").job_count == 2 and info.endpoint("dogs").has_reference
    with pytest.raises(LadisError, match="endpoint 'birds' is not in"):
        info.endpoint("birds")


@pytest.mark.parametrize("bad", ["", "   ", "s3://", "s3:///x", "http://example.com/x"])
def test_a_bad_data_source_is_named(bad: str) -> None:
    with pytest.raises(InputError):
        world.normalize_world_uri(bad)
    assert world.normalize_world_uri(" s3://b/p ") == "s3://b/p/"


# --------------------------------------------------------------------------- on-demand


def test_on_demand_ids_never_take_a_scheduled_hour() -> None:
    assert (
        ondemand.on_demand_job_id(datetime(2026, 1, 1, 5, 0, 0, tzinfo=UTC))
        == "2026-01-01T05-00-01Z"
    )
    assert (
        ondemand.on_demand_job_id(datetime(2026, 1, 1, 5, 7, 9, 500, tzinfo=UTC))
        == "2026-01-01T05-07-09Z"
    )


def test_saving_an_on_demand_job_writes_it_once(tmp_path: Path) -> None:
    monitoring = str(tmp_path / "monitoring" / "cats")
    job = replace(_job("2026-01-01T05-07-09Z"), source=ondemand.SOURCE)
    uri = ondemand.save_job(job, monitoring)
    assert JobResult.from_json(store.read_bytes(uri)).source == "on-demand"
    with pytest.raises(LadisError, match="already exists"):
        ondemand.save_job(job, monitoring)


@pytest.mark.app
def test_on_demand_test_on_the_real_world(app_env) -> None:
    job = next(j for j in app_env.jobs if j.incident)
    with pytest.raises(InputError, match="available layers"):
        ondemand.resolve_layers(job.reference, job.inference, ["no_such_layer"])
    settings = replace(job.settings, n_repeats=10, n_permutations=100)
    result = ondemand.run_test(
        reference=job.reference,
        inference=job.inference,
        layers=list(job.layers),
        after_step=job.first_step - 1,
        until_step=job.last_step,
        settings=settings,
        rule=job.incident_rule,
        endpoint=app_env.endpoint,
    )
    assert result.source == "on-demand" and result.requests == job.requests
    assert set(result.layers) == set(job.layers)
    assert all(len(layer.p_values) == 10 for layer in result.layers.values())
    assert result.detection_rate is not None and result.detection_rate > 50  # the attacked hour
    with pytest.raises(InputError, match="widen the window or lower n"):
        ondemand.run_test(
            reference=job.reference,
            inference=job.inference,
            after_step=job.first_step - 1,
            until_step=job.first_step + 2,
            settings=settings,
        )
