"""Unit tests of incident reports and verdicts, on JobResult objects built here and on
local folders (storage handles local paths exactly like s3:// URIs)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from ladis_core import cli, report, store
from ladis_core.errors import DataNotFoundError, InputError
from ladis_core.monitoring import triage
from ladis_core.monitoring.evidence import ClassEvidence, WindowEvidence
from ladis_core.monitoring.results import (
    JobResult,
    JobSettings,
    LayerResult,
)
from ladis_core.stats import ShareEstimate
from ladis_core.store import layout
from tests.support import factories

EVIL = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
T0 = datetime(2026, 11, 23, tzinfo=UTC)


def make_job(
    hour: int,
    rate: float | None = 5.0,
    *,
    endpoint: str = EVIL,
    world: str = "s3://w",
    n_top: int = 100,
    seed: int = 0,
) -> JobResult:
    """A job scheduled ``hour`` hours after T0 with two layers (one with a hostile name)."""
    rng = np.random.default_rng(seed + hour)
    moment = T0 + timedelta(hours=hour)
    baseline = 4.0
    return factories.make_job(
        hour,
        rate,
        baseline=baseline,
        endpoint=endpoint,
        reference=f"{world}/trials/digits/reference",
        inference=f"{world}/trials/digits/inference",
        finished_at=(moment + timedelta(seconds=40)).isoformat(),
        baseline_detection_rate=baseline,
        layers={
            EVIL: LayerResult(rate, baseline, 0.3, rng.random(100).tolist(), 512),
            "layer4.1": LayerResult(
                None if rate is None else rate / 2, 3.0, 0.4, rng.random(100).tolist(), 256
            ),
        },
        settings=JobSettings(seed=1234, layers=[EVIL, "layer4.1"]),
        top_samples=factories.top_samples(hour * 250, n_top, classes=3),
        reason=None if rate is not None else f"only 40 requests {EVIL}",
        class_counts={"0": 100, "1": 100, "2": 50},
        class_names={"0": EVIL, "1": "one", "2": '=HYPERLINK("http://x")'},
        ladis_version="0.1.0",
    )


def with_images(data: report.ReportData, *, size: int = 32, seed: int = 1) -> report.ReportData:
    """``data`` with noise images (worst case for PNG size) and recorded originals."""
    rng = np.random.default_rng(seed)
    samples = []
    for sample in data.samples:
        original = rng.random((3, size, size)).astype(np.float32)
        adversarial = np.clip(
            original + rng.choice([-0.03, 0.03], size=original.shape), 0, 1
        ).astype(np.float32)
        samples.append(
            replace(
                sample,
                image=adversarial,
                original=original,
                original_kind=report.ORIGINAL_RECORDED,
                original_source="natural.npz row 5",
                original_class=1,
                provenance={
                    "step": sample.step,
                    "source_index": 5,
                    "true_label": 1,
                    "attack": "pgd",
                    "epsilon": 0.03,
                    "hour": sample.job_id,
                },
            )
        )
    return replace(data, samples=samples)


def make_data(n_jobs: int = 6, incident_at: int = 3, *, images: bool = True) -> report.ReportData:
    jobs = [make_job(h, 90.0 if h == incident_at else 5.0) for h in range(n_jobs)]
    focus = jobs[incident_at]
    verdict = triage.Verdict(
        job_id=focus.job_id,
        verdict="confirmed",
        analyst=EVIL,
        note=f"{EVIL}\nsecond line",
        at=(T0 + timedelta(hours=5)).isoformat(),
        id="a1",
    )
    embedding = report.ReportEmbedding(
        layer=EVIL,
        reference=np.random.default_rng(2).normal(size=(200, 2)),
        inference=np.random.default_rng(3).normal(size=(250, 2)),
        inference_steps=np.arange(focus.first_step, focus.last_step + 1),
    )
    data = report.ReportData(
        jobs=[focus],
        timeline_jobs=jobs,
        verdicts={focus.job_id: [verdict]},
        samples=report.samples_of(focus),
        embedding=embedding,
        notes=[f"a note {EVIL}"],
        generated_at="2026-11-24T00:00:00+00:00",
        sources={focus.job_id: f"s3://w/monitoring/digits/{focus.job_id}/results.json"},
    )
    return with_images(data) if images else data


def without_plotly(html: str) -> str:
    """The report minus the inlined plotly.js (which has its own strings and URLs)."""
    from plotly.offline import get_plotlyjs

    ours = html.replace(get_plotlyjs(), "")
    assert len(ours) < len(html) - 1_000_000
    return ours


def write_world(root: Path, jobs: list[JobResult]) -> str:
    """Store ``jobs`` under ``<root>/monitoring/digits`` as the monitoring job would."""
    monitoring = layout.monitoring_uri(str(root), "digits")
    for job in jobs:
        store.write_json(layout.results_uri(monitoring, job.job_id), job.to_dict(), if_absent=True)
    return monitoring


# --------------------------------------------------------------------------- HTML


def test_html_escapes_everything_from_data_and_runs_only_its_own_scripts():
    html = report.render_html(make_data())
    assert EVIL not in html
    assert ESCAPED in html  # endpoint, layer, class, analyst, note, notes: shown as text
    nonce = re.search(r"script-src 'nonce-([0-9a-f]+)'", html).group(1)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
    # nothing is loaded from anywhere: no remote src/href, no CDN (plotly.js itself aside:
    # it names plotly.com and a MathJax CDN, which the browser test shows are never fetched)
    ours = without_plotly(html)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", ours)
    assert "cdn.plot.ly" not in ours
    assert "default-src 'none'" in html


def test_html_contains_every_section_and_the_settings_and_seed():
    data = make_data()
    html = without_plotly(report.render_html(data))
    for section in (
        "summary",
        "timeline",
        "layers",
        "samples",
        "embedding",
        "settings",
        "verdicts",
        "data-notes",
    ):
        assert f'<section id="{section}">' in html
    assert "1234" in html  # the seed
    assert escape(data.jobs[0].incident_rule.describe(), quote=False) in html
    assert html.count('<tr class="sample-row">') == 100
    assert html.count('class="px sample-image"') == 100
    assert html.count("data:image/png;base64,") == 300
    assert html.count('<div class="chart"') == 5  # timeline, heat map, layer bars, p-values, t-SNE
    assert "confirmed" in html and "second line" in html


def test_html_is_deterministic_and_self_contained_under_10_mb_for_100_samples():
    data = make_data()
    data = with_images(data, size=64)  # noise does not compress: a worst case
    first = report.render_html(data)
    assert first == report.render_html(data)
    size_mb = len(first.encode()) / 1e6
    print(f"HTML report with 100 samples of 3x64x64 noise: {size_mb:.2f} MB")
    assert size_mb <= 10
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs()[:2000] in first  # plotly.js inlined once
    assert first.count(get_plotlyjs()[:2000]) == 1


def test_html_without_images_or_samples_still_renders_with_notes():
    data = replace(
        make_data(images=False), embedding=None, notes=["images are not shown: trial gone"]
    )
    html = without_plotly(report.render_html(data))
    assert html.count("not available") == 100
    assert "images are not shown: trial gone" in html
    empty = replace(data, samples=[], verdicts={})
    html = report.render_html(empty)
    assert "No flagged inputs" in html and "No analyst has given a verdict" in html


def test_html_limits_samples_shown_and_says_where_the_rest_are():
    data = replace(make_data(images=False), max_html_samples=10)
    html = without_plotly(report.render_html(data))
    assert html.count('<tr class="sample-row">') == 10
    assert "Showing 10 of 100" in html


# --------------------------------------------------------------------------- JSON / CSV


def test_json_validates_against_the_shipped_schema_and_has_every_field():
    data = make_data()
    doc = json.loads(report.render_json(data))
    schema = report.report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
    assert doc["schema_version"] == report.REPORT_SCHEMA_VERSION
    job = data.jobs[0]
    assert doc["jobs"][0]["result"] == json.loads(job.to_json())  # every result field, unchanged
    samples = doc["jobs"][0]["samples"]
    assert [s["step"] for s in samples] == [s.step for s in job.top_samples]
    assert samples[0]["provenance"]["attack"] == "pgd"
    assert samples[0]["perturbation"]["linf"] == pytest.approx(0.03, abs=1e-6)
    assert doc["jobs"][0]["latest_verdict"] == "confirmed"
    assert len(doc["timeline"]) == 6 and doc["embedding"]["layer"] == EVIL


def test_schema_rejects_what_it_should():
    doc = json.loads(report.render_json(make_data(images=False)))
    schema = report.report_schema()
    for breakage in (
        lambda d: d.pop("schema_version"),
        lambda d: d["jobs"][0]["result"].pop("detection_rate"),
        lambda d: d["jobs"][0]["verdicts"][0].update(verdict="maybe"),
        lambda d: d["jobs"][0]["samples"][0].update(p_value=2.0),
        lambda d: d["timeline"][0].update(detection_rate=150),
    ):
        broken = json.loads(json.dumps(doc))
        breakage(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_json_of_an_untested_job_has_null_rates_not_nan():
    job = make_job(0, None)
    data = report.ReportData(jobs=[job], samples=report.samples_of(job))
    text = report.render_json(data)
    assert "NaN" not in text
    doc = json.loads(text)
    jsonschema.validate(doc, report.report_schema())
    assert doc["jobs"][0]["result"]["detection_rate"] is None


def test_csv_has_one_row_per_flagged_input_and_defuses_formulas():
    data = make_data()
    rows = list(csv.DictReader(io.StringIO(report.render_csv(data))))
    assert len(rows) == 100
    assert list(rows[0]) == list(report.CSV_COLUMNS)
    assert [int(r["step"]) for r in rows] == [s.step for s in data.jobs[0].top_samples]
    assert rows[0]["predicted_name"] == EVIL  # CSV is data: no HTML escaping
    formula = next(r for r in rows if r["predicted_class"] == "2")
    assert formula["predicted_name"].startswith("'=")
    assert rows[0]["attack"] == "pgd" and rows[0]["latest_verdict"] == "confirmed"
    assert float(rows[0]["linf"]) == pytest.approx(0.03, abs=1e-6)


def test_render_dispatches_and_rejects_unknown_formats():
    data = make_data(images=False)
    assert report.render(data, "csv") == report.render_csv(data)
    with pytest.raises(InputError, match="pdf"):
        report.render(data, "pdf")


# --------------------------------------------------------------------------- gathering (local folders)


def test_gather_reads_a_job_its_neighbours_and_verdicts_and_notes_a_missing_trial(tmp_path):
    jobs = [make_job(h, 90.0 if h == 5 else 5.0, world=str(tmp_path)) for h in range(30)]
    monitoring = write_world(tmp_path, jobs)
    focus = jobs[5]
    triage.add_verdict(monitoring, focus.job_id, verdict="needs-review", analyst="ana", note="look")
    steps = list(range(focus.first_step, focus.last_step + 1))
    store.write_json(
        layout.join(monitoring, focus.job_id, "scores.json"),
        {
            "job_id": focus.job_id,
            "score_method": "witness-pvalue",
            "steps": steps,
            "predicted_class": [s % 3 for s in steps],
            "score": [0.5] * len(steps),
            "p_value": [0.5] * len(steps),
            "layers": {EVIL: {"score": [0.5] * len(steps), "p_value": [0.5] * len(steps)}},
        },
    )
    store.write_bytes(layout.join(monitoring, jobs[6].job_id, "scores.json"), b"{broken")
    data = report.gather_report_data([layout.job_uri(monitoring, focus.job_id)], now=T0)
    assert [j.job_id for j in data.jobs] == [focus.job_id]
    # the default context is 12 hours either side
    assert [j.job_id for j in data.timeline_jobs] == [j.job_id for j in jobs[0:18]]
    assert data.verdicts[focus.job_id][0].note == "look"
    assert len(data.samples) == 100 and all(s.image is None for s in data.samples)
    assert any("not shown" in note for note in data.notes)
    html = report.render_html(data)
    assert "not shown" in html
    doc = json.loads(report.render_json(data))
    jsonschema.validate(doc, report.report_schema())
    assert doc["jobs"][0]["window_scores"]["steps"] == steps  # every request, not only the top 100
    assert len(doc["jobs"][0]["window_scores"]["layers"][EVIL]["p_value"]) == 250
    broken = report.gather_report_data(
        [layout.job_uri(monitoring, jobs[6].job_id)], include_images=False
    )
    assert any("per-request scores" in note for note in broken.notes)


def test_gather_over_a_range_reports_every_job_in_it(tmp_path):
    jobs = [make_job(h, 5.0, world=str(tmp_path), n_top=5) for h in range(10)]
    monitoring = write_world(tmp_path, jobs)
    store.write_bytes(layout.join(monitoring, "_state", "x.json"), b"{}")  # not a job folder
    store.write_json(layout.bookmark_uri(monitoring), {"last_step": 1})
    data = report.gather_report_data(
        monitoring=monitoring,
        start=T0 + timedelta(hours=2),
        end=T0 + timedelta(hours=4),
        include_images=False,
    )
    assert [j.job_id for j in data.jobs] == [j.job_id for j in jobs[2:5]]
    assert len(data.samples) == 15
    assert data.range_start == (T0 + timedelta(hours=2)).isoformat()


def test_gather_errors_name_the_problem(tmp_path):
    monitoring = write_world(tmp_path, [make_job(0, world=str(tmp_path))])
    with pytest.raises(DataNotFoundError, match="no monitoring job"):
        report.gather_report_data([layout.job_uri(monitoring, "2030-01-01T00-00-00Z")])
    with pytest.raises(InputError, match="swap"):
        report.gather_report_data(monitoring=monitoring, start=T0 + timedelta(hours=1), end=T0)
    with pytest.raises(DataNotFoundError, match="widen"):
        report.gather_report_data(monitoring=monitoring, start=T0 + timedelta(days=3))
    with pytest.raises(InputError, match="nothing to report"):
        report.gather_report_data()
    corrupt = layout.results_uri(monitoring, "2026-11-22T00-00-00Z")
    store.write_bytes(corrupt, b"{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        report.gather_report_data([corrupt])


def test_results_location_accepts_folder_or_file():
    uri = "s3://b/monitoring/digits/2026-11-23T03-00-00Z"
    expected = (uri + "/results.json", "2026-11-23T03-00-00Z", "s3://b/monitoring/digits")
    assert report.results_location(uri) == expected
    assert report.results_location(uri + "/") == expected
    assert report.results_location(uri + "/results.json") == expected


def test_display_order_puts_incidents_first_and_shares_slots_between_jobs():
    calm, hot = make_job(0, 5.0, n_top=3), make_job(1, 90.0, n_top=3)
    ordered = report._gather.display_order(
        [calm, hot], {j.job_id: report.samples_of(j) for j in (calm, hot)}
    )
    assert [(s.job_id == hot.job_id, s.rank) for s in ordered] == [
        (True, 1),
        (False, 1),
        (True, 2),
        (False, 2),
        (True, 3),
        (False, 3),
    ]


# --------------------------------------------------------------------------- triage (local folders)


def test_verdicts_are_append_only_records_and_never_touch_results(tmp_path):
    job = make_job(0, 90.0, world=str(tmp_path))
    monitoring = write_world(tmp_path, [job])
    results = layout.results_uri(monitoring, job.job_id)
    before = store.read_bytes(results)
    first = triage.add_verdict(
        monitoring,
        job.job_id,
        verdict="needs-review",
        analyst=" Ana ",
        note="odd",
        at=datetime(2026, 11, 23, 9, 0),
    )
    second = triage.add_verdict(
        monitoring,
        job.job_id,
        verdict="confirmed",
        analyst="Bo",
        note=EVIL,
        at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    )
    # a verdict given "earlier" (clock skew) is ordered by its time, not by arrival
    third = triage.add_verdict(
        monitoring,
        job.job_id,
        verdict="dismissed",
        analyst="Cy",
        note="",
        at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
    )
    assert store.read_bytes(results) == before
    listed = triage.list_verdicts(monitoring, job.job_id)
    assert [v.id for v in listed] == [third.id, first.id, second.id]
    assert listed[1].analyst == "Ana" and listed[1].at == "2026-11-23T09:00:00+00:00"
    assert triage.latest_verdict(monitoring, job.job_id) == second
    keys = [
        Path(i.uri).name for i in store.list_objects(layout.verdicts_uri(monitoring, job.job_id))
    ]
    assert len(keys) == 3 and all(
        re.match(r"^2026-11-23T\d\d-00-00\.000000Z-[0-9a-f]{32}\.json$", k) for k in keys
    )
    assert triage.verdicts_by_job(monitoring) == {job.job_id: listed}


def test_verdict_validation(tmp_path):
    job = make_job(0, world=str(tmp_path))
    monitoring = write_world(tmp_path, [job])
    with pytest.raises(InputError, match="not one of"):
        triage.add_verdict(monitoring, job.job_id, verdict="maybe", analyst="a", note="")
    with pytest.raises(InputError, match="analyst name is empty"):
        triage.add_verdict(monitoring, job.job_id, verdict="confirmed", analyst="   ", note="")
    with pytest.raises(InputError, match="at most 10,000"):
        triage.add_verdict(
            monitoring, job.job_id, verdict="confirmed", analyst="a", note="x" * 10_001
        )
    with pytest.raises(InputError, match="control characters"):
        triage.add_verdict(
            monitoring, job.job_id, verdict="confirmed", analyst="a\x1b[31m", note=""
        )
    with pytest.raises(InputError, match="job id"):
        triage.add_verdict(monitoring, "../escape", verdict="confirmed", analyst="a", note="")
    with pytest.raises(DataNotFoundError, match="no job"):
        triage.add_verdict(
            monitoring, "2030-01-01T00-00-00Z", verdict="confirmed", analyst="a", note=""
        )
    assert triage.list_verdicts(monitoring, job.job_id) == []
    assert triage.latest_verdict(monitoring, job.job_id) is None
    # multi-line notes are fine
    v = triage.add_verdict(
        monitoring, job.job_id, verdict="dismissed", analyst="a", note="line 1\r\nline 2"
    )
    assert v.note == "line 1\nline 2"


def test_a_corrupt_verdict_record_is_skipped_not_fatal(tmp_path):
    job = make_job(0, world=str(tmp_path))
    monitoring = write_world(tmp_path, [job])
    good = triage.add_verdict(monitoring, job.job_id, verdict="confirmed", analyst="a", note="")
    store.write_bytes(
        layout.join(layout.verdicts_uri(monitoring, job.job_id), "2026-01-01-bad.json"), b"{oops"
    )
    assert triage.list_verdicts(monitoring, job.job_id) == [good]


# --------------------------------------------------------------------------- CLI


def test_cli_writes_each_format(tmp_path, capsys):
    jobs = [make_job(h, 90.0 if h == 1 else 5.0, world=str(tmp_path), n_top=20) for h in range(3)]
    monitoring = write_world(tmp_path, jobs)
    job_uri = layout.job_uri(monitoring, jobs[1].job_id)
    for fmt in ("html", "json", "csv"):
        out = tmp_path / f"out.{fmt}"
        assert cli.main(["report", "--job", job_uri, "--out", str(out)]) == 0
        assert "wrote" in capsys.readouterr().out
        assert out.stat().st_size > 0
    jsonschema.validate(json.loads((tmp_path / "out.json").read_text()), report.report_schema())
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 21
    out = tmp_path / "range.csv"
    assert (
        cli.main(
            [
                "report",
                "--monitoring",
                monitoring,
                "--from",
                jobs[0].job_id,
                "--to",
                "2026-11-23T02:00",
                "--format",
                "csv",
                "--out",
                str(out),
                "--no-images",
            ]
        )
        == 0
    )
    assert len(out.read_text().splitlines()) == 61
    capsys.readouterr()
    assert (
        cli.main(["report", "--job", job_uri, "--format", "json", "--out", "-", "--no-images"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["jobs"][0]["result"]["job_id"] == jobs[1].job_id


def test_cli_errors_exit_2_with_one_clear_line(tmp_path, capsys):
    monitoring = write_world(tmp_path, [make_job(0, world=str(tmp_path))])
    assert (
        cli.main(
            [
                "report",
                "--job",
                layout.job_uri(monitoring, "2031-01-01T00-00-00Z"),
                "--out",
                str(tmp_path / "x.html"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: no monitoring job") and len(err.strip().splitlines()) == 1
    assert cli.main(["report", "--monitoring", monitoring, "--out", str(tmp_path / "x.html")]) == 2
    assert "--from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["report", "--job", "x", "--from", "not a time", "--out", "x.html"])


def _with_window_test(data: report.ReportData) -> report.ReportData:
    share = ShareEstimate(0.22, 0.14, 0.31, n_inputs=240)
    evidence = WindowEvidence(
        p_value=0.002,
        layers={"avgpool_output_0": 0.002},
        share=share,
        reference_rows=450,
        window_rows=240,
        duplicates=4,
        n_permutations=1000,
        classes=[ClassEvidence(2, 45, 30, share), ClassEvidence(7, 0, 3, None)],
    )
    job = replace(
        data.jobs[0],
        window_test=evidence,
        baseline_range=(1.0, 7.0),
        baseline_splits=5,
        warnings=[f"a warning {EVIL}"],
    )
    return replace(data, jobs=[job], samples=[replace(s, job_id=job.job_id) for s in data.samples])


def test_reports_carry_the_window_test_and_the_crafted_share():
    data = _with_window_test(make_data())
    html = report.render_html(data)
    assert re.search(r"between 14 % and 31 % of this window\S* requests look crafted", html)
    assert "Window test p" in html and "14–31 %" in html
    assert "Crafted share per predicted class" in html
    assert "Baseline over 5 reference splits: 1.0%–7.0%" in html
    assert EVIL not in html  # the warning is escaped like all text from data
    doc = json.loads(report.render_json(data))
    jsonschema.validate(doc, report.report_schema(), format_checker=jsonschema.FormatChecker())
    assert doc["jobs"][0]["result"]["window_test"]["share"]["low"] == 0.14
    broken = json.loads(json.dumps(doc))
    broken["jobs"][0]["result"]["window_test"]["share"]["high"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report.report_schema())
    rows = list(csv.DictReader(io.StringIO(report.render_csv(data))))
    assert rows[0]["job_window_p_value"] == "0.002"
    assert (rows[0]["job_crafted_share_low"], rows[0]["job_crafted_share_high"]) == ("0.14", "0.31")
