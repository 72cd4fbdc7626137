"""Unit tests of the shared chart and image helpers (ladis_core.viz, ladis_core.viz.images)."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from ladis_core import viz
from ladis_core.errors import InputError
from ladis_core.monitoring.jobs import job_time
from ladis_core.monitoring.results import (
    JobResult,
    LayerResult,
)
from ladis_core.viz import images
from tests.support.factories import make_job

EVIL = "<script>alert(1)</script>"


def _job(
    hour: int,
    rate: float | None,
    *,
    layers: dict[str, LayerResult] | None = None,
    requests: int = 240,
    baseline: float | None = 4.0,
) -> JobResult:
    moment = datetime(2026, 11, 23, tzinfo=UTC) + timedelta(hours=hour)
    return make_job(
        hour,
        rate,
        baseline=baseline,
        requests=requests,
        first_step=hour * 240,
        finished_at=moment.isoformat(),
        baseline_detection_rate=baseline,
        layers=layers
        if layers is not None
        else {"avgpool": LayerResult(rate, baseline, 0.2, [0.01, 0.5], 512)},
        reason=None if rate is not None else "only 12 requests (need 100)",
    )


def _decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        img.load()
        return np.asarray(img)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8), (17, 5), (3, 7, 64)])
def test_png_round_trips_exactly_through_an_independent_decoder(shape):
    rng = np.random.default_rng(0)
    image = rng.random(shape).astype(np.float32)
    decoded = _decode(images.png_bytes(image))
    expected = images.to_uint8_hwc(image)
    assert decoded.reshape(expected.shape).tolist() == expected.tolist()
    assert decoded.shape[:2] == expected.shape[:2]


def test_png_of_a_flat_image_is_small_and_scaling_enlarges_by_nearest_neighbour():
    flat = np.full((3, 64, 64), 0.5, dtype=np.float32)
    assert len(images.png_bytes(flat)) < 200  # the filters + zlib make flat areas nearly free
    tiny = np.array([[[0.0, 1.0]]], dtype=np.float32)  # (1, 1, 2)
    big = _decode(images.png_bytes(tiny, scale=3))
    assert big.shape == (3, 6)
    assert big[:, :3].max() == 0 and big[:, 3:].min() == 255


def test_images_are_clipped_and_nan_becomes_black():
    image = np.array([[[-1.0, 2.0, np.nan]]], dtype=np.float32)
    assert images.to_uint8_hwc(image)[0, :, 0].tolist() == [0, 255, 0]


def test_bad_shapes_raise_input_errors():
    with pytest.raises(InputError, match="expected"):
        images.png_bytes(np.zeros((2, 2, 2, 2)))
    with pytest.raises(InputError, match="uint8"):
        images.encode_png(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(InputError, match="must match"):
        images.perturbation(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))


def test_data_uri_carries_the_png():
    image = np.zeros((1, 4, 4), dtype=np.float32)
    uri = images.image_data_uri(image)
    assert uri.startswith("data:image/png;base64,")
    import base64

    assert base64.b64decode(uri.split(",", 1)[1]) == images.png_bytes(image)


def test_thumbnail_shrinks_large_images_by_block_averaging_and_keeps_small_ones():
    small = np.random.default_rng(1).random((3, 32, 32)).astype(np.float32)
    assert np.array_equal(images.thumbnail(small, max_size=64), small)
    large = np.zeros((1, 128, 100), dtype=np.float32)
    large[:, :, 50:] = 1.0
    thumb = images.thumbnail(large, max_size=64)
    assert thumb.shape == (1, 64, 50)
    assert thumb[0, 0, 0] == 0.0 and thumb[0, 0, -1] == 1.0


def test_thumbnail_data_uris_shrink_the_chosen_rows_and_skip_rows_without_an_input():
    batch = np.zeros((4, 3, 64, 64), dtype=np.float32)
    batch[2, 0] = 1.0  # row 2: pure red
    uris = images.thumbnail_data_uris(batch, np.array([2, 0, 2, 7, -1]), max_size=16)
    assert sorted(uris) == [0, 2]
    decoded = Image.open(io.BytesIO(base64.b64decode(uris[2].split(",", 1)[1])))
    assert decoded.size == (16, 16)
    assert decoded.convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_perturbation_size_matches_the_definitions():
    rng = np.random.default_rng(2)
    original = rng.random((3, 16, 16)).astype(np.float32)
    delta = rng.uniform(-0.02, 0.02, size=original.shape).astype(np.float32)
    size = images.perturbation_size(original + delta, original)
    assert size.linf == pytest.approx(float(np.abs(delta).max()), rel=1e-5)
    assert size.l2 == pytest.approx(float(np.linalg.norm(delta.ravel())), rel=1e-5)


def test_amplified_difference_is_white_where_unchanged_red_brighter_blue_darker():
    original = np.full((3, 4, 4), 0.5, dtype=np.float32)
    adversarial = original.copy()
    adversarial[1, 0, 0] += 0.01  # brighter in one channel only: still shows
    adversarial[:, 3, 3] -= 0.02  # darker
    rgb, factor = images.amplified_difference(adversarial, original)
    assert rgb.shape == (3, 4, 4)
    assert factor == pytest.approx(50.0, rel=1e-3)  # the largest change maps to full colour
    unchanged, brighter, darker = rgb[:, 1, 1], rgb[:, 0, 0], rgb[:, 3, 3]
    assert unchanged.min() > 0.95  # near white
    assert brighter[0] > brighter[2] + 0.2  # red
    assert darker[2] > darker[0] + 0.2  # blue
    same, factor = images.amplified_difference(original, original)
    assert factor == 1.0 and same.min() > 0.95
    with pytest.raises(InputError, match="positive"):
        images.amplified_difference(adversarial, original, amplify=0)


def test_difference_png_decodes_to_rgb():
    original = np.zeros((1, 8, 8), dtype=np.float32)
    decoded = _decode(images.difference_png(original + 0.1, original))
    assert decoded.shape == (8, 8, 3)


# --------------------------------------------------------------------------- charts


def _traces(fig) -> dict[str, object]:
    return {trace.name: trace for trace in fig.data}


def test_timeline_marks_incidents_untested_windows_and_the_selected_job():
    jobs = [_job(h, 5.0) for h in range(5)]
    jobs[2] = _job(2, 92.0)
    jobs[3] = _job(3, None, requests=12)
    fig = viz.timeline_figure(list(reversed(jobs)), selected_job_id=jobs[2].job_id)
    traces = _traces(fig)
    assert set(traces) >= {
        "requests",
        "baseline rate",
        "alert threshold",
        "detection rate",
        "incident",
        "not tested",
        "selected job",
    }
    rate = traces["detection rate"]
    # sorted by time; the untested window is a gap, never a false 0 %
    assert list(rate.y) == [5.0, 5.0, 92.0, None, 5.0]
    assert [c[0] for c in rate.customdata] == [j.job_id for j in jobs]
    assert [c[0] for c in traces["incident"].customdata] == [jobs[2].job_id]
    assert [c[0] for c in traces["not tested"].customdata] == [jobs[3].job_id]
    assert list(traces["requests"].y) == [240, 240, 240, 12, 240]
    assert traces["requests"].yaxis == "y2"
    assert list(traces["alert threshold"].y) == [j.alert_threshold for j in jobs]
    assert len(fig.layout.shapes) == 1  # the vertical line at the selected job
    json.loads(fig.to_json())


def test_timeline_of_no_jobs_says_so():
    fig = viz.timeline_figure([])
    assert "No monitoring jobs" in fig.layout.annotations[0].text


def test_heatmap_has_a_combined_row_blank_untested_cells_and_escaped_labels():
    jobs = [
        _job(0, 10.0, layers={EVIL: LayerResult(10.0), "layer4": LayerResult(3.0)}),
        _job(1, None, layers={}),
        _job(2, 80.0, layers={EVIL: LayerResult(80.0), "layer4": LayerResult(40.0)}),
    ]
    fig = viz.layer_heatmap_figure(jobs)
    heat = fig.data[0]
    assert [list(row) for row in heat.z] == [
        [10.0, None, 80.0],
        [10.0, None, 80.0],
        [3.0, None, 40.0],
    ]
    labels = list(fig.layout.yaxis.ticktext)
    assert labels == [viz.COMBINED_LABEL, "&lt;script&gt;alert(1)&lt;/script&gt;", "layer4"]
    assert EVIL not in fig.to_json().replace("\\u003c", "<").replace("\\u003e", ">").replace(
        "\\u002f", "/"
    )


def test_layer_bars_colour_layers_above_the_threshold_and_keep_raw_names_for_clicks():
    job = _job(
        0,
        60.0,
        layers={
            "layer1": LayerResult(3.0, 2.0),
            EVIL: LayerResult(70.0, 5.0),
            "avgpool": LayerResult(None),
        },
    )
    fig = viz.layer_bars_figure(job)
    bars = _traces(fig)["detection rate"]
    assert list(bars.x) == ["layer1", EVIL, "avgpool"]  # raw values: click events give real names
    assert list(fig.layout.xaxis.ticktext)[1] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert (
        bars.marker.color[1] == viz.COLORS["incident"]
        and bars.marker.color[0] == viz.COLORS["rate"]
    )
    assert list(_traces(fig)["baseline rate"].y) == [2.0, 5.0, None]
    hlines = [shape.y0 for shape in fig.layout.shapes]
    assert job.alert_threshold in hlines and 100 * job.settings.alpha in hlines


def test_pvalue_histogram_counts_every_test_and_reports_the_share_below_alpha():
    rng = np.random.default_rng(3)
    uniform = rng.random(100)
    uniform[:7] = 0.001  # 7 tests (plus the chance ones) below alpha
    fig = viz.pvalue_histogram_figure({"layer4": uniform, "avgpool": np.ones(50)}, alpha=0.05)
    traces = list(fig.data)
    assert sum(traces[0].y) == 100 and sum(traces[1].y) == 50
    assert traces[1].y[-1] == 50  # p = 1 falls in the last bin
    expected = 100 * np.mean(uniform < 0.05)
    assert f"({expected:.0f}% &lt; α)" in traces[0].name
    with pytest.raises(InputError, match="alpha"):
        viz.pvalue_histogram_figure({"x": uniform}, alpha=1.5)
    assert "No p-values" in viz.pvalue_histogram_figure({}, alpha=0.05).layout.annotations[0].text


def test_embedding_figure_splits_flagged_points_and_validates_lengths():
    rng = np.random.default_rng(4)
    suspect = np.zeros(30, dtype=bool)
    suspect[:4] = True
    fig = viz.embedding_figure(
        rng.normal(size=(50, 2)),
        rng.normal(size=(30, 2)),
        suspect=suspect,
        inference_labels=[f"step {i}" for i in range(30)],
    )
    traces = _traces(fig)
    assert len(traces["reference (natural)"].x) == 50
    assert len(traces["inference"].x) == 26 and len(traces["flagged"].x) == 4
    with pytest.raises(InputError, match="suspect"):
        viz.embedding_figure(np.zeros((2, 2)), np.zeros((3, 2)), suspect=[True])


def test_job_time_falls_back_to_the_job_id():
    job = _job(0, 1.0)
    odd = JobResult(**{**job.__dict__, "scheduled_at": "yesterday"})
    assert job_time(odd) == datetime(2026, 11, 23, tzinfo=UTC)
