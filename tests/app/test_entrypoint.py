"""The container's entry point (``docker/entrypoint.sh dashboard``, run here as the image
runs it, without Docker): without sign-in it listens on 127.0.0.1 only; with
``LADIS_ALLOW_ANONYMOUS=1`` on every interface, and every page says access is
unauthenticated; a half-configured ``[auth]`` or an explicit public address without
sign-in is refused before anything listens. (With sign-in it listens on every interface:
test_dashboard_signin.py.) Also the image's non-root user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.dashboard import (
    REPO,
    DashboardServer,
    wait_for_app,
    wait_for_landing,
)

pytestmark = [pytest.mark.app]

ARTIFACTS = REPO / "test-artifacts" / "entrypoint"
BANNER = "Access is unauthenticated."


def _env(s3_server, app_world, app_cache_dir, tmp_path: Path, **extra: str) -> dict[str, str]:
    empty = tmp_path / "secrets.toml"
    empty.write_text("", encoding="utf-8")
    return {
        **s3_server.environment(),
        "LADIS_S3_URI": app_world.uri,
        "LADIS_CACHE_DIR": str(app_cache_dir),
        "LADIS_SECRETS_FILE": str(empty),  # no [auth]: sign-in off
        "HOME": str(tmp_path),
        "SMDEBUG_LOG_LEVEL": "error",
        **extra,
    }


def _listening(server: DashboardServer) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.Process(server.process.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
    }


def test_without_sign_in_it_listens_on_loopback_only(
    s3_server, app_world, app_cache_dir, tmp_path
) -> None:
    env = _env(s3_server, app_world, app_cache_dir, tmp_path)
    with DashboardServer(env, log_path=ARTIFACTS / "loopback.log", entrypoint=True) as server:
        assert _listening(server) == {"127.0.0.1"}
    assert "no sign-in: access is unauthenticated" in (ARTIFACTS / "loopback.log").read_text()


@pytest.mark.browser
def test_anonymous_access_opens_every_interface_with_a_banner_on_every_page(
    s3_server, app_world, app_cache_dir, tmp_path, browser
) -> None:
    env = _env(s3_server, app_world, app_cache_dir, tmp_path, LADIS_ALLOW_ANONYMOUS="1")
    with DashboardServer(env, log_path=ARTIFACTS / "anonymous.log", entrypoint=True) as server:
        assert _listening(server) == {"0.0.0.0"}
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(server.url)
        wait_for_landing(page)
        wait_for_app(page)
        pages = ("Fleet overview", "Monitoring history", "Flagged inputs", "On-demand test")
        for label in (*pages, "Incident report"):
            if label != "Fleet overview":
                nav = page.locator("[data-testid='stSidebarNav']")
                nav.get_by_text(label, exact=True).click()
                page.locator("h1").filter(has_text=label).wait_for(timeout=60_000)
                wait_for_app(page)
            banner = page.get_by_text(BANNER)
            assert banner.count() == 1, label
            assert "acts as admin" in page.locator("[data-testid='stAlert']").first.inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "anonymous-banner.png"))
        page.close()


def _dashboard_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ladis_core", "dashboard", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serving_publicly_without_sign_in_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "secrets.toml"
    empty.write_text("", encoding="utf-8")
    env = {"LADIS_SECRETS_FILE": str(empty), "HOME": str(tmp_path)}
    env.pop("LADIS_ALLOW_ANONYMOUS", None)
    done = _dashboard_command(env, "--address", "0.0.0.0", "--port", "8599")
    assert done.returncode == 2
    assert "without sign-in" in done.stderr and "LADIS_ALLOW_ANONYMOUS=1" in done.stderr
    assert "Traceback" not in done.stderr


def test_half_configured_sign_in_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\nclient_id = "x"\n', encoding="utf-8")
    done = _dashboard_command({"HOME": str(tmp_path)}, "--secrets", str(secrets))
    assert done.returncode == 2
    assert "cookie_secret" in done.stderr and "redirect_uri" in done.stderr
    assert "Traceback" not in done.stderr
    missing = _dashboard_command({"HOME": str(tmp_path)}, "--secrets", str(tmp_path / "x.toml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_the_image_runs_as_an_unprivileged_user() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
    # the last USER comes after every install step, so the app never runs as root
    last_user = max(i for i, line in enumerate(lines) if line.startswith("USER "))
    assert all(not line.startswith("RUN ") for line in lines[last_user:])
