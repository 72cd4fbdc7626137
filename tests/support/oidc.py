"""A real OpenID Connect provider for the sign-in tests, and the dashboard's settings for it.

:class:`OidcProvider` runs ``node tests/oidc/provider.mjs`` (node-oidc-provider, installed
by ``scripts/install.sh --test`` into ``tests/oidc/node_modules``) on a free loopback port
and stops it by its PID. :func:`write_auth_secrets` writes the Streamlit secrets file with
the ``[auth]`` section that turns the dashboard's sign-in on, and :func:`sign_in` /
:func:`sign_out` go through the real redirects in a Playwright page.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ladis_core.devtools.ports import find_free_port
from tests.support.dashboard import REPO, stop_process, wait_for_app

PROVIDER_DIR = REPO / "tests" / "oidc"
CLIENT_ID = "ladis-dashboard"


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    email: str
    name: str
    groups: tuple[str, ...]


class OidcProvider:
    """node-oidc-provider on 127.0.0.1, with one confidential client and ``users``."""

    def __init__(
        self,
        users: list[Person],
        *,
        redirect_uris: list[str],
        workdir: Path,
        id_token_ttl_s: int = 3600,
    ) -> None:
        self.port = find_free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_secret = secrets.token_urlsafe(24)
        self.users = users
        self.redirect_uris = redirect_uris
        self.workdir = workdir
        self.id_token_ttl_s = id_token_ttl_s
        self.process: subprocess.Popen | None = None

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self, *, timeout_s: float = 60.0) -> OidcProvider:
        node = shutil.which("node")
        module = PROVIDER_DIR / "node_modules" / "oidc-provider"
        if node is None or not module.is_dir():
            raise RuntimeError(
                "the sign-in tests need Node.js and tests/oidc/node_modules: run "
                "scripts/install.sh --test, or only `npm ci --prefix tests/oidc`"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "oidc-provider.json"
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "id_token_ttl_s": self.id_token_ttl_s,
                    "clients": [
                        {
                            "client_id": CLIENT_ID,
                            "client_secret": self.client_secret,
                            "redirect_uris": self.redirect_uris,
                            "post_logout_redirect_uris": self.redirect_uris,
                        }
                    ],
                    "users": [
                        {**user.__dict__, "groups": list(user.groups)} for user in self.users
                    ],
                }
            ),
            encoding="utf-8",
        )
        self._log = open(self.workdir / "oidc-provider.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [node, str(PROVIDER_DIR / "provider.mjs"), str(config)],
            cwd=PROVIDER_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the OIDC provider exited with {self.process.returncode}; "
                    f"see {self.workdir / 'oidc-provider.log'}"
                )
            try:
                with urllib.request.urlopen(self.metadata_url, timeout=2) as answer:
                    if json.load(answer).get("issuer") == self.issuer:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the OIDC provider did not answer on {self.issuer}")

    def stop(self) -> None:
        stop_process(self.process, getattr(self, "_log", None))
        self.process = self._log = None


def write_auth_secrets(path: Path, provider: OidcProvider, *, dashboard_port: int) -> Path:
    """The Streamlit secrets file whose ``[auth]`` section turns sign-in on (exactly what a
    deployment writes, with this provider's URLs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{dashboard_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        f'client_id = "{CLIENT_ID}"\n'
        f'client_secret = "{provider.client_secret}"\n'
        f'server_metadata_url = "{provider.metadata_url}"\n'
        # the test provider supports prompt=login, not Streamlit's default select_account
        'client_kwargs = { scope = "openid email profile groups", prompt = "login" }\n',
        encoding="utf-8",
    )
    return path


def sign_in(page, dashboard_url: str, user: Person) -> None:
    """Sign ``user`` in through the provider's own sign-in page; returns on the dashboard."""
    page.goto(dashboard_url)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Username").wait_for(timeout=60_000)
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(
        lambda url: url.startswith(dashboard_url) and "oauth2callback" not in url, timeout=60_000
    )
    wait_for_app(page)


def sign_out(page) -> None:
    """Press "Sign out" and confirm at the provider; returns on the sign-in screen."""
    page.locator("[data-testid='stSidebar']").get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click(timeout=60_000)
    page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    wait_for_app(page)
