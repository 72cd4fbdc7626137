"""Every dashboard page under Streamlit's AppTest, against a small real world in a real
local S3 server: no exceptions, the key elements present, the selected job flowing from
the history page to the others, and errors rendered as friendly messages."""

from __future__ import annotations

import json

import pytest

from ladis_core import store
from ladis_core.devtools.ports import find_free_port
from ladis_core.monitoring import triage
from ladis_core.monitoring.results import JobResult
from ladis_core.store import layout
from tests.support.dashboard import all_text, by_label, open_app, page_warnings, texts

pytestmark = pytest.mark.app


def _no_exception(at) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _texts(elements) -> list[str]:
    return texts(elements)


# --------------------------------------------------------------------------- fleet overview


def test_overview_is_the_first_page_and_lists_every_endpoint(s3_bucket: str, app_world) -> None:
    """Three endpoints in a fresh world: one quiet, one whose latest window is an
    unreviewed incident, one with a failed window and a failing alert channel; a stored
    channel name no config could hold is never shown."""
    quiet = app_world.jobs[0]
    incident = next(j for j in app_world.jobs if j.incident)
    hostile = "**bold**<img src=x>"
    for endpoint, job in (("calm", quiet), ("hit", incident), ("broken", quiet)):
        output = layout.monitoring_uri(s3_bucket, endpoint)
        store.write_json(layout.results_uri(output, job.job_id), json.loads(job.to_json()))
    broken = layout.monitoring_uri(s3_bucket, "broken")
    store.write_json(
        layout.join(broken, "2099-01-01T00-00-00Z", "failures", "one.json"), {"kind": "storage"}
    )
    store.write_json(
        layout.join(broken, "_state", "alerts.json"),
        {
            "pager": {"ok": False, "failures": 3, "detail": "HTTP 500"},
            hostile: {"ok": False, "failures": 1, "detail": "a name no config can hold"},
        },
    )
    at = open_app(page=None)
    _no_exception(at)
    assert _texts(at.title) == ["Fleet overview"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Endpoints"] == "3"
    assert metrics["Open incidents"] == "1" and metrics["Unreviewed incidents"] == "1"
    table = at.dataframe[0].value
    assert list(table["Endpoint"]) == ["broken", "hit", "calm"]  # worst first
    assert list(table["State"]) == ["FAILING", "INCIDENT", "stale"]
    assert table["Last 24 h"][1] == [incident.detection_rate]
    assert table["Failing"][0] == "window 2099-01-01T00-00-00Z, alerts: pager"
    assert any("Alert channels failing: pager." in w for w in page_warnings(at))
    assert "<img" not in all_text(at) and "**bold**" not in all_text(at)  # not a name


def test_overview_of_an_empty_world_says_what_to_do(s3_bucket: str) -> None:
    at = open_app(page=None)
    _no_exception(at)
    assert any("No monitoring data found" in t for t in _texts(at.info))


# --------------------------------------------------------------------------- history


def test_history_shows_every_job_with_timeline_table_and_kpis(app_env) -> None:
    at = open_app()
    _no_exception(at)
    assert _texts(at.title) == ["Monitoring history"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Jobs"] == str(len(app_env.jobs))
    assert int(metrics["Incidents"]) == sum(j.incident for j in app_env.jobs)
    assert at.selectbox(key="shared.endpoint").value == app_env.endpoint
    # the job table lists every job, newest first, with rates in percent
    table = at.dataframe[0].value
    assert list(table["Job"]) == [j.job_id for j in reversed(app_env.jobs)]
    assert {"Detection rate", "Baseline", "Threshold", "Requests", "Verdict"} <= set(table.columns)
    assert {"Window p", "Crafted share"} <= set(table.columns)
    assert table["Crafted share"].str.endswith("%").all()  # every job of the world has one
    assert "Detection rate over time" in _texts(at.subheader)


def test_selected_job_flows_from_history_to_the_other_pages(app_env) -> None:
    first = app_env.jobs[0].job_id
    at = open_app()
    at.selectbox(key="history.pick").set_value(first).run()
    _no_exception(at)
    assert at.session_state["shared.selected_job"] == first
    assert {m.label: m.value for m in at.metric}["Requests"] == str(app_env.jobs[0].requests)

    for page in ("flagged", "layers", "on_demand", "report"):
        at.switch_page(f"../pages/{page}.py").run()
        _no_exception(at)
        assert any(first in c and "selected on" in c for c in _texts(at.caption)), page
    # the report page speaks of the selected job
    assert any(first in s for s in _texts(at.subheader))


# --------------------------------------------------------------------------- flagged inputs


def test_flagged_inputs_show_images_originals_and_sizes(app_env) -> None:
    attacked = next(j for j in app_env.jobs if j.incident)
    at = open_app()
    at.selectbox(key="history.pick").set_value(attacked.job_id).run()
    at.switch_page("../pages/flagged.py").run()
    _no_exception(at)
    assert _texts(at.title) == ["Flagged inputs"]
    assert not page_warnings(at), page_warnings(at)
    text = all_text(at)
    assert "#1 · step" in text
    assert "L∞" in text and "L2" in text
    assert "Recorded provenance: pgd" in text
    # the window test's verdict, the crafted share and the per-class view
    assert "look crafted" in text and "Window test p = " in text
    per_class = next(e for e in at.expander if e.label.startswith("Per predicted class"))
    classes_table = per_class.dataframe[0].value
    assert {"Predicted class", "Window requests", "Reference rows", "Crafted share"} <= set(
        classes_table.columns
    )
    assert classes_table["Window requests"].sum() <= attacked.requests
    # filters and paging
    assert at.number_input(key="flagged.page").value == 1
    classes = at.multiselect(key=f"flagged.classes.{attacked.job_id}")
    first_class = classes.options[0]
    classes.set_value([classes.options[0]]).run()
    _no_exception(at)
    listing = [e for e in at.expander if e.label == "All flagged inputs as a table"]
    table = listing[0].dataframe[0].value if listing else None
    assert table is not None and len(table) > 0
    assert set(table["Predicted class"]) == {first_class}


# --------------------------------------------------------------------------- layer explorer


def test_layer_explorer_computes_tsne_on_request(app_env) -> None:
    at = open_app(page="layers")
    _no_exception(at)
    assert "Detection rate per layer" in _texts(at.subheader)
    charts_before = len(at.get("plotly_chart"))
    button = next(b for b in at.button if b.label.startswith("Compute t-SNE"))
    button.click().run()
    _no_exception(at)
    assert not at.error, _texts(at.error)
    assert len(at.get("plotly_chart")) == charts_before + 1
    # with the hover-thumbnail component, carrying an input picture for every embedded point
    (hover,) = at.get("bidi_component")
    thumbnails = json.loads(hover.proto.json)["thumbnails"]
    assert set(thumbnails) == {"reference", "inference"}
    assert all(
        uri.startswith("data:image/png;base64,")
        for rows in thumbnails.values()
        for uri in rows.values()
    )
    # kept: the next visit shows the embedding without asking again
    at.run()
    assert not any(b.label.startswith("Compute t-SNE") for b in at.button)
    at.segmented_control(key="layers.colour_by").set_value("predicted class").run()
    _no_exception(at)


# --------------------------------------------------------------------------- on-demand


def test_on_demand_test_runs_and_saves_a_job(app_env) -> None:
    at = open_app(page="on_demand")
    _no_exception(at)
    by_label(at.number_input, "R (repetitions)").set_value(10)
    by_label(at.number_input, "Permutations").set_value(100)
    next(b for b in at.button if b.label == "Run test").click().run()
    _no_exception(at)
    assert not at.error, _texts(at.error)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Detection rate"].endswith("%")
    assert metrics["Crafted share"].endswith("%") and metrics["Window test p"] != "—"
    assert any("Window test" in t and "distinct requests" in t for t in _texts(at.markdown))
    result = at.session_state["on_demand.result"][2]
    assert result.source == "on-demand" and result.settings.n_repeats == 10
    assert all(len(layer.p_values) == 10 for layer in result.layers.values())

    next(b for b in at.button if b.label == "Save as job").click().run()
    _no_exception(at)
    saved = layout.results_uri(app_env.monitoring, result.job_id)
    stored = JobResult.from_json(store.read_bytes(saved))
    assert stored.job_id == result.job_id and stored.source == "on-demand"
    assert any("Saved as job" in s for s in _texts(at.success))
    # it is a job like the others: the history lists it
    at.switch_page("../pages/history.py").run()
    assert result.job_id in list(at.dataframe[0].value["Job"])
    store.delete(saved)


# --------------------------------------------------------------------------- report


def test_report_offers_downloads_and_records_a_verdict(app_env) -> None:
    job = app_env.jobs[-1]
    at = open_app()
    at.selectbox(key="history.pick").set_value(job.job_id).run()
    at.switch_page("../pages/report.py").run()
    _no_exception(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download HTML report", "Download JSON", "Download CSV (flagged inputs)"]

    next(b for b in at.button if b.label == "Record verdict").click().run()
    assert "Choose a verdict first." in _texts(at.warning)
    assert triage.list_verdicts(app_env.monitoring, job.job_id) == []

    by_label(at.text_input, "Analyst").input("Ada")
    by_label(at.text_area, "Note").input("checked <b>by hand</b>")
    by_label(at.radio, "Verdict").set_value("confirmed")
    next(b for b in at.button if b.label == "Record verdict").click().run()
    _no_exception(at)
    verdicts = triage.list_verdicts(app_env.monitoring, job.job_id)
    assert [(v.verdict, v.analyst) for v in verdicts][-1] == ("confirmed", "Ada")
    assert any("Verdict recorded" in s for s in _texts(at.success))
    at.switch_page("../pages/history.py").run()
    table = at.dataframe[0].value
    assert table.loc[table["Job"] == job.job_id, "Verdict"].item() == "confirmed"


# --------------------------------------------------------------------------- errors


def test_empty_bucket_shows_what_to_do(s3_bucket: str) -> None:
    at = open_app()
    _no_exception(at)
    info = " ".join(_texts(at.info))
    assert f"No monitoring data found in {s3_bucket}" in info
    assert "make demo" in info


def test_missing_bucket_is_the_first_run_case(s3_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LADIS_S3_URI", "s3://no-such-bucket-ladis/")
    at = open_app()
    _no_exception(at)
    assert any("No monitoring data found" in t for t in _texts(at.info))


def test_unreachable_s3_is_a_friendly_error(s3_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{find_free_port()}")
    monkeypatch.setenv("LADIS_S3_URI", "s3://ladis/")
    at = open_app()
    _no_exception(at)
    errors = " ".join(_texts(at.error))
    assert "cannot reach S3" in errors and "Refresh" in errors
    assert "Traceback" not in all_text(at)


def test_access_denied_names_the_problem_and_never_the_secret(
    s3_env, app_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "definitely-wrong-secret-value"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("LADIS_S3_URI", app_world.uri)
    at = open_app()
    _no_exception(at)
    errors = " ".join(_texts(at.error))
    assert "access denied" in errors.lower()
    text = all_text(at)
    assert secret not in text and s3_env["AWS_SECRET_ACCESS_KEY"] not in text


def test_a_job_whose_trial_is_gone_explains_itself(s3_bucket: str, app_world) -> None:
    # a copy of a real job whose trials were never written to this bucket
    job = app_world.jobs[-1]
    data = json.loads(job.to_json())
    data["reference"] = layout.reference_trial_uri(s3_bucket, app_world.endpoint)
    data["inference"] = layout.inference_trial_uri(s3_bucket, app_world.endpoint)
    store.write_json(
        layout.results_uri(layout.monitoring_uri(s3_bucket, app_world.endpoint), job.job_id), data
    )

    at = open_app(page="flagged")
    _no_exception(at)
    assert any("inference trial" in w and "could not be read" in w for w in _texts(at.warning))
    at.switch_page("../pages/layers.py").run()
    next(b for b in at.button if b.label.startswith("Compute t-SNE")).click().run()
    _no_exception(at)
    assert any("trial" in e and "Problem while computing the t-SNE" in e for e in _texts(at.error))
    at.switch_page("../pages/on_demand.py").run()
    next(b for b in at.button if b.label == "Run test").click().run()
    _no_exception(at)
    assert any("Problem while running the test" in e for e in _texts(at.error))
    assert "Traceback" not in all_text(at)
