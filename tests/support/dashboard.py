"""Helpers of the dashboard tests (driving the app with Streamlit's AppTest)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ladis_core.devtools.ports import find_free_port

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "app" / "streamlit_app.py"
APP_TIMEOUT_S = 120


def open_app(*, page: str | None = "history", address: str | None = "127.0.0.1"):
    """Run the dashboard once and open ``page`` (e.g. "flagged"; the history page by
    default, ``None``: stay on the first page, the fleet overview), as if served on
    ``address`` (without sign-in the dashboard serves only on 127.0.0.1 or with
    ``LADIS_ALLOW_ANONYMOUS=1``; AppTest has no server of its own)."""
    import streamlit as st
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    # caches are per process and keyed by the world URI, not by the credentials or the
    # endpoint each test sets: start every test from a cold dashboard
    st.cache_data.clear()
    st.cache_resource.clear()
    config.set_option("server.address", address)
    at = AppTest.from_file(str(ENTRY), default_timeout=APP_TIMEOUT_S)
    at.run()
    if page:
        at.switch_page(f"../pages/{page}.py").run()
    return at


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_CODE_SPAN = re.compile(r"(`+)( ?)(.+?)\2\1")


def displayed(markdown: str) -> str:
    """The text a markdown string shows, as far as the dashboard's own escaping goes
    (:func:`app.text.literal` backslash-escapes punctuation, puts words that would be
    linked in code spans and adds invisible joiners)."""
    parts, at = [], 0
    text = str(markdown)
    for span in _CODE_SPAN.finditer(text):
        parts += [_ESCAPED.sub(r"\1", text[at : span.start()]), span.group(3)]
        at = span.end()
    parts.append(_ESCAPED.sub(r"\1", text[at:]))
    return "".join(parts).replace("\u2060", "")


def texts(elements) -> list[str]:
    """The displayed text of each of ``elements`` (e.g. ``at.caption``)."""
    return [displayed(getattr(e, "value", "")) for e in elements]


BANNER_ICON = ":material/lock_open:"


def page_warnings(at) -> list[str]:
    """The warnings a page shows, without the unauthenticated-access banner every page
    carries when sign-in is off."""
    return [displayed(w.value) for w in at.warning if w.icon != BANNER_ICON]


def all_text(at) -> str:
    """Every piece of text the app rendered, as displayed (for checks that something is
    or is not shown)."""
    parts = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "error",
        "warning",
        "info",
        "success",
        "exception",
        "text",
        "code",
    ):
        for element in getattr(at, kind, []):
            parts.append(str(getattr(element, "value", "") or getattr(element, "message", "")))
    for metric in at.metric:
        parts.append(f"{metric.label} {metric.value}")
    return displayed("\n".join(parts))


def by_label(widgets, label: str):
    """The one widget of ``widgets`` (e.g. ``at.number_input``) with this label."""
    found = [w for w in widgets if w.label == label]
    assert len(found) == 1, f"{len(found)} widgets labelled {label!r}"
    return found[0]


# --------------------------------------------------------------------------- real browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def stop_process(process, log=None) -> None:
    """Stop a server the tests started (by its PID: SIGTERM, then SIGKILL after 10 s) and
    close its log file."""
    import subprocess

    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if log is not None:
        log.close()


@contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright (the test is skipped where it is not installed)."""
    import pytest
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class DashboardServer:
    """``streamlit run app/streamlit_app.py`` as a subprocess on a free loopback port,
    stopped by its PID. ``args`` go to Streamlit (e.g. ``--secrets.files PATH``). With
    ``entrypoint=True`` the container's entry point starts it instead
    (``docker/entrypoint.sh dashboard``, which picks the address itself); ``script``
    serves another Streamlit script (a benchmark's bare page)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        log_path: Path,
        port: int | None = None,
        args: tuple[str, ...] = (),
        entrypoint: bool = False,
        script: Path = ENTRY,
    ) -> None:
        import os

        self.port = port or find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = {**os.environ, **env}
        self._args = args
        self._entrypoint = entrypoint
        self.script = script
        self.process = None

    def _command(self) -> list[str]:
        import sys

        if self._entrypoint:
            self._env.update(
                LADIS_HOME=str(REPO),
                LADIS_PORT=str(self.port),
                # the entry point runs `python` from PATH, as in the image
                PATH=f"{Path(sys.executable).parent}:{self._env.get('PATH', '')}",
            )
            return ["bash", str(REPO / "docker" / "entrypoint.sh"), "dashboard", *self._args]
        return [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(self.script),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(self.port),
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
            "--client.toolbarMode",
            "minimal",
            *self._args,
        ]

    def start(self, *, timeout_s: float = 120.0) -> DashboardServer:
        import subprocess
        import time
        import urllib.request

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.process = subprocess.Popen(
            self._command(),
            cwd=REPO,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"streamlit did not answer on {self.url} within {timeout_s:.0f} s")

    def stop(self) -> None:
        # the entry point execs: this PID is Streamlit's
        stop_process(self.process, getattr(self, "_log", None))
        self.process = self._log = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


#: what the first page (the fleet overview) draws once it has data: its endpoints table
LANDING = "[data-testid='stDataFrame']"


def wait_for_landing(page, *, timeout_ms: int = 120_000) -> None:
    """Wait until the first page shows its endpoints (a page reached by the dashboard's
    URL or after signing in)."""
    page.locator(LANDING).first.wait_for(timeout=timeout_ms)


def wait_for_app(page, *, timeout_ms: int = 60_000, quiet_ms: int = 750) -> None:
    """Wait until Streamlit has finished running the script.

    The "running" indicator appears only some time after a run starts, so its absence at
    one instant proves nothing: wait until it has stayed away for ``quiet_ms``.
    """
    page.wait_for_function(
        """quietMs => {
            const now = performance.now();
            if (document.querySelector('[data-testid="stStatusWidget"]')) {
                window.__ladisQuietSince = now;
                return false;
            }
            window.__ladisQuietSince ??= now;
            return now - window.__ladisQuietSince >= quietMs;
        }""",
        arg=quiet_ms,
        timeout=timeout_ms,
        polling=100,
    )
    page.evaluate("() => { delete window.__ladisQuietSince; }")


def wait_for_images(
    page, selector: str = "[data-testid='stImage'] img", *, timeout_ms: int = 60_000
) -> list[tuple[int, str]]:
    """Wait until the script has finished and every image matching ``selector`` has
    settled, then return ``(naturalWidth, src)`` of each.

    A settled image is ``complete``: loaded (``naturalWidth > 0``) or failed for good
    (``naturalWidth == 0``, e.g. a 404). Images still arriving while the script streams
    more elements are not ``complete`` yet, so they are waited for, not reported broken.
    """
    wait_for_app(page, timeout_ms=timeout_ms)
    page.wait_for_function(
        """selector => {
            const images = [...document.querySelectorAll(selector)];
            return images.length > 0 && images.every(i => i.complete);
        }""",
        arg=selector,
        timeout=timeout_ms,
    )
    return [
        tuple(pair)
        for pair in page.locator(selector).evaluate_all(
            "imgs => imgs.map(i => [i.naturalWidth, i.getAttribute('src')])"
        )
    ]
