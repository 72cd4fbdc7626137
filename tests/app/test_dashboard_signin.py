"""Sign-in end to end: Chromium, the dashboard started by the container's entry point with
an ``[auth]`` section, and a real OpenID Connect provider (node-oidc-provider) on
127.0.0.1. Nothing shows before sign-in; a viewer browses and exports but writes
nothing; an analyst records verdicts (as the signed-in identity) and runs and saves
on-demand tests; an admin may change the data source, within the allow-list; a user
without a role sees nothing; a session ends after ``LADIS_SESSION_MAX_AGE``; provenance
written in markdown stays text. The browser reaches nothing but 127.0.0.1 (every other
request is aborted and recorded).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ladis_core.devtools.ports import find_free_port
from ladis_core.monitoring import jobs as stored_jobs
from ladis_core.monitoring import triage
from tests.support.dash_world import MARKDOWN_ATTACK, AccessWorld
from tests.support.dashboard import (
    LANDING,
    REPO,
    DashboardServer,
    wait_for_app,
    wait_for_images,
    wait_for_landing,
)
from tests.support.oidc import OidcProvider, Person, sign_in, sign_out, write_auth_secrets

pytestmark = [pytest.mark.app, pytest.mark.browser]

ARTIFACTS = REPO / "test-artifacts" / "signin"
VIEWER = Person("vera", "vera-pw-1", "vera@example.test", "Vera Viewer", ("ladis-viewers",))
ANALYST = Person("ana", "ana-pw-2", "ana@example.test", "Ana Analyst", ("ladis-analysts",))
ADMIN = Person("adam", "adam-pw-3", "adam@example.test", "Adam Admin", ("ladis-admins",))
NOBODY = Person("nora", "nora-pw-4", "nora@example.test", "Nora Nobody", ("other-team",))
ROLES = """
claim = "groups"
default = "none"
[claim_values]
"ladis-viewers" = "viewer"
"ladis-analysts" = "analyst"
"ladis-admins" = "admin"
"""
SESSION_S = 30


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"main": find_free_port(), "short": find_free_port()}


@pytest.fixture(scope="module")
def provider(ports, tmp_path_factory) -> Iterator[OidcProvider]:
    redirects = [f"http://127.0.0.1:{port}/oauth2callback" for port in ports.values()]
    oidc = OidcProvider(
        [VIEWER, ANALYST, ADMIN, NOBODY],
        redirect_uris=redirects,
        workdir=tmp_path_factory.mktemp("oidc"),
    )
    oidc.start()
    yield oidc
    oidc.stop()


def _signed_dashboard(
    name: str, folder: Path, provider: OidcProvider, port: int, world_env: dict[str, str], **how
) -> DashboardServer:
    """A dashboard with sign-in on: the roles file and the ``[auth]`` secrets for
    ``provider`` in ``folder``; ``how`` is ``entrypoint=True`` (the secrets through
    ``LADIS_SECRETS_FILE``) or extra ``env``."""
    roles = folder / "roles.toml"
    roles.write_text(ROLES, encoding="utf-8")
    secrets = write_auth_secrets(folder / "secrets.toml", provider, dashboard_port=port)
    env = {
        **world_env,
        "LADIS_ROLES_FILE": str(roles),
        "HOME": str(folder),  # no ~/.streamlit of the developer's
        **how.pop("env", {}),
    }
    if how.get("entrypoint"):
        env["LADIS_SECRETS_FILE"] = str(secrets)
    else:
        how["args"] = ("--secrets.files", str(secrets))
    return DashboardServer(env, log_path=ARTIFACTS / f"{name}.log", port=port, **how)


@pytest.fixture(scope="module")
def world_env(s3_server, access_world: AccessWorld, app_cache_dir) -> dict[str, str]:
    return {
        **s3_server.environment(),
        "LADIS_S3_URI": access_world.world.uri,
        "LADIS_CACHE_DIR": str(app_cache_dir),
        "SMDEBUG_LOG_LEVEL": "error",
    }


@pytest.fixture(scope="module")
def dashboard(provider, ports, world_env, tmp_path_factory) -> Iterator[DashboardServer]:
    """The dashboard as the container starts it: the entry point with a secrets file."""
    folder = tmp_path_factory.mktemp("signin")
    with _signed_dashboard(
        "streamlit", folder, provider, ports["main"], world_env, entrypoint=True
    ) as server:
        yield server


class Visit:
    """A fresh browser context (no cookies) that reaches only 127.0.0.1."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(
            viewport={"width": 1400, "height": 1600}, accept_downloads=True
        )
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser) -> Iterator[Visit]:
    v = Visit(browser)
    yield v
    v.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _open_page(page, label: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_text(label, exact=True).click()
    page.locator("h1").filter(has_text=label).wait_for(timeout=60_000)
    wait_for_app(page)


def _sidebar(page):
    return page.locator("[data-testid='stSidebar']")


def _assert_sign_in_screen_only(page, access_world: AccessWorld) -> None:
    page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    wait_for_app(page)
    text = page.locator("body").inner_text()
    html = page.content()
    assert "Sign in to see the monitoring dashboard." in text
    leaks = [j.job_id for j in access_world.world.jobs if j.job_id in text or j.job_id in html]
    assert not leaks, leaks
    for name in (access_world.world.endpoint, access_world.world.uri, "%", "Detection rate"):
        assert name not in text, name
    assert page.locator("img").count() == 0
    assert page.locator("[data-testid='stSidebar']").count() == 0
    assert page.locator("[data-testid='stSidebarNav']").count() == 0


# --------------------------------------------------------------------------- tests


def test_the_entry_point_with_sign_in_serves_every_interface(dashboard) -> None:
    listening = {
        c.laddr.ip
        for c in psutil.Process(dashboard.process.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == dashboard.port
    }
    assert listening == {"0.0.0.0"}


def test_nothing_but_the_sign_in_screen_before_signing_in(dashboard, visit, access_world) -> None:
    page = visit.page
    page.goto(dashboard.url)
    _assert_sign_in_screen_only(page, access_world)
    _shot(page, "0-sign-in")
    # deep links show the same screen
    page.goto(f"{dashboard.url}/flagged")
    _assert_sign_in_screen_only(page, access_world)
    assert not visit.errors, visit.errors


def test_a_viewer_browses_and_exports_but_writes_nothing(dashboard, visit, access_world) -> None:
    page = visit.page
    sign_in(page, dashboard.url, VIEWER)
    wait_for_landing(page)
    wait_for_app(page)
    sidebar = _sidebar(page)
    assert "Signed in as vera@example.test · viewer" in sidebar.inner_text()
    assert page.get_by_role("textbox", name="Data source").is_disabled()
    assert page.get_by_text("Access is unauthenticated").count() == 0
    _shot(page, "1-viewer-history")

    # flagged inputs: images load, and provenance written in markdown stays text
    _open_page(page, "Flagged inputs")
    page.get_by_text("#1 · step").first.wait_for(timeout=60_000)
    widths = wait_for_images(page)
    assert widths and all(width for width, _ in widths)
    expected = f"Recorded provenance: {MARKDOWN_ATTACK}"
    caption = page.get_by_text("Recorded provenance: [click]").first
    caption.wait_for(timeout=30_000)
    assert caption.inner_text().replace("\u2060", "").startswith(expected)
    assert page.locator("a[href*='example.invalid']").count() == 0
    assert page.locator("img[src*='example.invalid']").count() == 0
    _shot(page, "2-viewer-flagged")

    # on-demand tests need the analyst role
    _open_page(page, "On-demand test")
    page.get_by_text("To run on-demand tests you need the").wait_for(timeout=30_000)
    assert page.get_by_role("button", name="Run test").count() == 0

    # the report: downloads yes, verdicts no
    _open_page(page, "Incident report")
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Download JSON").click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert access_world.incident_id in json.dumps(exported)
    page.get_by_text("To record verdicts you need the").wait_for(timeout=30_000)
    assert page.get_by_role("button", name="Record verdict").count() == 0
    _shot(page, "3-viewer-report")

    sign_out(page)
    _assert_sign_in_screen_only(page, access_world)
    page.goto(dashboard.url)  # signed out for good: the cookie is gone
    _assert_sign_in_screen_only(page, access_world)
    assert not [u for u in visit.blocked if "example.invalid" in u], visit.blocked
    assert not visit.errors, visit.errors


def _on_demand_jobs(world) -> list[str]:
    return [j.job_id for j in stored_jobs.load_jobs(world.monitoring) if j.source == "on-demand"]


def test_an_analyst_records_verdicts_and_runs_tests(dashboard, visit, access_world, s3_env) -> None:
    page = visit.page
    world = access_world.world
    sign_in(page, dashboard.url, ANALYST)
    wait_for_landing(page)
    assert "ana@example.test · analyst" in _sidebar(page).inner_text()
    assert page.get_by_role("textbox", name="Data source").is_disabled()

    # a verdict, attributed to the signed-in identity: there is no name box
    _open_page(page, "Incident report")
    page.get_by_text("Recorded as ana@example.test (signed in).").wait_for(timeout=30_000)
    assert page.get_by_label("Analyst").count() == 0
    before = len(triage.list_verdicts(world.monitoring, access_world.incident_id))
    page.get_by_text("Confirmed attack").click()
    page.get_by_label("Note").fill("seen in the flagged inputs")
    page.get_by_role("button", name="Record verdict").click()
    page.get_by_text("Verdict recorded.").wait_for(timeout=60_000)
    verdicts = triage.list_verdicts(world.monitoring, access_world.incident_id)
    assert len(verdicts) == before + 1
    assert (verdicts[-1].verdict, verdicts[-1].analyst) == ("confirmed", "ana@example.test")
    _shot(page, "4-analyst-verdict")

    # an on-demand test, saved as a job
    on_demand_before = _on_demand_jobs(world)
    _open_page(page, "On-demand test")
    for label, value in (("R (repetitions)", "10"), ("Permutations", "100")):
        page.get_by_role("spinbutton", name=label).fill(value)
    page.get_by_role("button", name="Run test").click()
    page.get_by_role("button", name="Save as job").wait_for(timeout=120_000)
    wait_for_app(page)
    page.get_by_role("button", name="Save as job").click()
    page.get_by_text("Saved as job").wait_for(timeout=60_000)
    assert len(_on_demand_jobs(world)) == len(on_demand_before) + 1
    _shot(page, "5-analyst-on-demand")

    # a trial outside the allowed sources is refused, naming the allow-list
    outside = f"{access_world.outside_uri.rstrip('/')}/trials/{world.endpoint}/inference"
    page.get_by_label("Inference trial (traffic, PREDICT)").fill(outside)
    page.get_by_role("button", name="Run test").click()
    refusal = page.get_by_text("is outside the allowed data sources").first
    refusal.wait_for(timeout=60_000)
    assert world.uri in refusal.inner_text()
    sign_out(page)
    assert not visit.errors, visit.errors


def test_an_admin_changes_the_data_source_within_the_allow_list(
    dashboard, visit, access_world
) -> None:
    page = visit.page
    sign_in(page, dashboard.url, ADMIN)
    wait_for_landing(page)
    source = page.get_by_role("textbox", name="Data source")
    assert source.is_enabled()
    source.fill(access_world.outside_uri)
    source.press("Enter")
    refusal = page.get_by_text("is outside the allowed data sources").first
    refusal.wait_for(timeout=60_000)
    wait_for_app(page)
    assert access_world.world.uri in refusal.inner_text()
    assert page.locator(LANDING).count() == 0
    _shot(page, "6-admin-refused")
    # an allowed source opens again
    source.fill(access_world.world.uri)
    source.press("Enter")
    wait_for_landing(page)


def test_a_signed_in_user_without_a_role_sees_nothing(dashboard, visit, access_world) -> None:
    page = visit.page
    sign_in(page, dashboard.url, NOBODY)
    page.get_by_text("you have no role in LADIS").wait_for(timeout=60_000)
    text = page.locator("body").inner_text()
    assert "nora@example.test" in text
    assert not any(j.job_id in text for j in access_world.world.jobs)
    assert page.locator("[data-testid='stSidebarNav']").count() == 0
    assert page.locator("img").count() == 0


@pytest.fixture(scope="module")
def short_dashboard(provider, ports, world_env, tmp_path_factory) -> Iterator[DashboardServer]:
    """A dashboard whose sessions last SESSION_S seconds."""
    folder = tmp_path_factory.mktemp("short")
    env = {"LADIS_SESSION_MAX_AGE": f"{SESSION_S}s"}
    with _signed_dashboard(
        "streamlit-short", folder, provider, ports["short"], world_env, env=env
    ) as server:
        yield server


def test_an_ended_session_asks_to_sign_in_again(short_dashboard, visit, access_world) -> None:
    page = visit.page
    started = time.monotonic()
    sign_in(page, short_dashboard.url, VIEWER)
    wait_for_landing(page)
    # the ID token was issued before the page showed: from here the session has at most
    # SESSION_S seconds left
    shown = time.monotonic()
    assert shown - started < SESSION_S, "the machine was too slow to see the session alive"
    time.sleep(SESSION_S + 1)
    _sidebar(page).get_by_role("button", name="Refresh").click()
    page.get_by_text("Your session has ended.").wait_for(timeout=60_000)
    wait_for_app(page)
    text = page.locator("body").inner_text()
    assert not any(j.job_id in text for j in access_world.world.jobs)
    assert page.locator("[data-testid='stSidebarNav']").count() == 0
    # signing in again opens the dashboard
    page.get_by_role("button", name="Sign in again").click()
    page.get_by_label("Username").fill(VIEWER.username)
    page.get_by_label("Password").fill(VIEWER.password)
    page.get_by_role("button", name="Sign in").click()
    wait_for_landing(page)
