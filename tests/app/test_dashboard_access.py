"""What the dashboard reads and lets each role do, under AppTest on a copy of the real test
world: allowed data sources (the sidebar box, the on-demand trial boxes, the trial URIs
inside a results.json), cost caps, the anonymous roles and banner, and where it refuses
to serve without sign-in. Sign-in itself runs in a real browser against a real OpenID
Connect provider (test_dashboard_signin.py)."""

from __future__ import annotations

import pytest

from app.text import literal
from ladis_core.monitoring import triage
from tests.support.dash_world import MARKDOWN_ATTACK, AccessWorld
from tests.support.dashboard import BANNER_ICON, all_text, by_label, open_app, page_warnings, texts

pytestmark = pytest.mark.app


@pytest.fixture
def access_env(s3_env, access_world: AccessWorld, app_cache_dir, monkeypatch) -> AccessWorld:
    """The copy is the configured world; nothing else is allowed."""
    monkeypatch.setenv("LADIS_S3_URI", access_world.world.uri)
    monkeypatch.setenv("LADIS_CACHE_DIR", str(app_cache_dir))
    monkeypatch.delenv("LADIS_ALLOWED_SOURCES", raising=False)
    for name in ("LADIS_ANONYMOUS_ROLE", "LADIS_ALLOW_ANONYMOUS", "LADIS_MAX_STEPS"):
        monkeypatch.delenv(name, raising=False)
    return access_world


def _no_exception(at) -> None:
    assert not at.exception, [e.message for e in at.exception]


def _pick(at, job_id: str, page: str):
    at.selectbox(key="history.pick").set_value(job_id).run()
    return at.switch_page(f"../pages/{page}.py").run()


def test_a_data_source_outside_the_allow_list_is_refused(access_env: AccessWorld) -> None:
    at = open_app()
    _no_exception(at)
    assert at.text_input(key="shared.world_uri").value == access_env.world.uri
    at.text_input(key="shared.world_uri").set_value(access_env.outside_uri).run()
    _no_exception(at)
    errors = " ".join(texts(at.error))
    assert f"the data source {access_env.outside_uri} is outside the allowed data sources" in errors
    assert f"({access_env.world.uri})" in errors, "the refusal names the allow-list"
    assert not at.selectbox, "nothing of the refused source is listed"
    assert not at.metric and not at.dataframe
    # allowing it explicitly opens it
    at.text_input(key="shared.world_uri").set_value(access_env.world.uri).run()
    assert at.metric


def test_allowed_sources_extend_the_world(access_env: AccessWorld, monkeypatch) -> None:
    monkeypatch.setenv("LADIS_ALLOWED_SOURCES", access_env.outside_uri)
    at = open_app()
    at.text_input(key="shared.world_uri").set_value(access_env.outside_uri).run()
    _no_exception(at)
    assert not at.error, texts(at.error)
    assert at.selectbox(key="shared.endpoint").value == access_env.world.endpoint


def test_a_results_json_pointing_outside_is_not_followed(access_env: AccessWorld) -> None:
    at = _pick(open_app(), access_env.outside_job_id, "flagged")
    _no_exception(at)
    warnings = " ".join(page_warnings(at))
    assert "the inference trial of job" in warnings
    assert f"{access_env.outside_uri.rstrip('/')}/trials/" in warnings
    assert "is outside the allowed data sources" in warnings and access_env.world.uri in warnings
    assert not at.get("imgs"), "no image of the outside trial is shown"
    assert "Input not available" in all_text(at)
    # the layer explorer does not read the outside trial either
    at.switch_page("../pages/layers.py").run()
    next(b for b in at.button if b.label.startswith("Compute t-SNE")).click().run()
    _no_exception(at)
    assert any("outside the allowed data sources" in e for e in texts(at.error))
    # nor does the report (its export lists the refusal as a note)
    at.switch_page("../pages/report.py").run()
    _no_exception(at)
    assert any("outside the allowed data sources" in w for w in page_warnings(at))


def test_on_demand_trials_outside_are_refused_and_caps_hold(
    access_env: AccessWorld, monkeypatch
) -> None:
    at = open_app(page="on_demand")
    _no_exception(at)
    outside = f"{access_env.outside_uri.rstrip('/')}/trials/{access_env.world.endpoint}/inference"
    by_label(at.text_input, "Inference trial (traffic, PREDICT)").input(outside)
    next(b for b in at.button if b.label == "Run test").click().run()
    _no_exception(at)
    errors = " ".join(texts(at.error))
    assert f"the inference trial {outside} is outside the allowed data sources" in errors
    assert access_env.world.uri in errors
    assert at.session_state["on_demand.result"] is None

    # a window longer than LADIS_MAX_STEPS is refused before anything is read
    monkeypatch.setenv("LADIS_MAX_STEPS", "10")
    at = open_app(page="on_demand")
    assert any("at most 10 steps (LADIS_MAX_STEPS)" in c for c in texts(at.caption))
    next(b for b in at.button if b.label == "Run test").click().run()
    _no_exception(at)
    assert any(
        "on-demand tests allow at most 10" in e and "LADIS_MAX_STEPS" in e for e in texts(at.error)
    )
    # the form's bounds are the caps
    monkeypatch.setenv("LADIS_MAX_N", "50")
    at = open_app(page="on_demand")
    assert by_label(at.number_input, "n (rows per sample)").max == 50


def test_anonymous_viewers_browse_but_write_nothing(access_env: AccessWorld, monkeypatch) -> None:
    monkeypatch.setenv("LADIS_ANONYMOUS_ROLE", "viewer")
    at = open_app()
    _no_exception(at)
    assert [w.icon for w in at.warning] == [BANNER_ICON]
    assert "acts as *viewer*" in texts(at.warning)[0]
    assert at.text_input(key="shared.world_uri").disabled
    assert at.metric, "viewers browse the history"

    at.switch_page("../pages/on_demand.py").run()
    _no_exception(at)
    assert not [b for b in at.button if b.label == "Run test"]
    assert any("To run on-demand tests you need the **analyst** role" in i for i in texts(at.info))

    at.switch_page("../pages/report.py").run()
    _no_exception(at)
    assert [b.proto.label for b in at.get("download_button")][1] == "Download JSON"
    assert not [b for b in at.button if b.label == "Record verdict"]
    assert any("To record verdicts you need the **analyst** role" in i for i in texts(at.info))

    # a viewer cannot point the dashboard elsewhere, even through the session state
    at.session_state["shared.world_uri"] = access_env.outside_uri
    at.run()
    assert at.text_input(key="shared.world_uri").value == access_env.world.uri


def test_anonymous_analysts_name_themselves(access_env: AccessWorld, monkeypatch) -> None:
    monkeypatch.setenv("LADIS_ANONYMOUS_ROLE", "analyst")
    at = _pick(open_app(), access_env.incident_id, "report")
    assert at.text_input(key="shared.world_uri").disabled
    by_label(at.text_input, "Analyst").input("Ada")
    by_label(at.radio, "Verdict").set_value("needs-review")
    next(b for b in at.button if b.label == "Record verdict").click().run()
    _no_exception(at)
    last = triage.list_verdicts(access_env.world.monitoring, access_env.incident_id)[-1]
    assert (last.verdict, last.analyst) == ("needs-review", "Ada")


def test_provenance_in_markdown_is_shown_as_text(access_env: AccessWorld) -> None:
    at = _pick(open_app(), access_env.incident_id, "flagged")
    _no_exception(at)
    assert f"Recorded provenance: {MARKDOWN_ATTACK}" in all_text(at)
    # it reaches the page through the text helper; what Chromium makes of that (text,
    # no link, no remote image) is checked in test_dashboard_signin.py
    sources = [c.value for c in at.caption if "Recorded provenance" in c.value]
    assert any(s.startswith(f"Recorded provenance: {literal(MARKDOWN_ATTACK)} ") for s in sources)


def test_no_anonymous_access_beyond_loopback(access_env: AccessWorld, monkeypatch) -> None:
    at = open_app(address="0.0.0.0")
    _no_exception(at)
    text = all_text(at)
    assert "served on 0.0.0.0 without sign-in" in text and "LADIS_ALLOW_ANONYMOUS=1" in text
    assert not at.metric and not at.dataframe and not at.sidebar.text_input
    assert not any(j.job_id in text for j in access_env.world.jobs)
    # Streamlit's default, no address, is every interface too
    assert "without sign-in" in all_text(open_app(address=None))

    monkeypatch.setenv("LADIS_ALLOW_ANONYMOUS", "1")
    at = open_app(address="0.0.0.0")
    _no_exception(at)
    assert at.metric and [w.icon for w in at.warning] == [BANNER_ICON]


def test_anonymous_role_none_lets_nobody_in(access_env: AccessWorld, monkeypatch) -> None:
    monkeypatch.setenv("LADIS_ANONYMOUS_ROLE", "none")
    at = open_app()
    _no_exception(at)
    assert "LADIS_ANONYMOUS_ROLE=none" in all_text(at)
    assert not at.metric
