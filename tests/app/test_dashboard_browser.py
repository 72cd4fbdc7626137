"""The whole dashboard in a real browser: Playwright driving Debian's Chromium against
``streamlit run`` on a free loopback port, on the small real world in local S3.

Open the fleet overview and click the endpoint to reach its history, select the incident by clicking its point on the timeline, check that
the flagged inputs' images really load (``naturalWidth > 0``: AppTest cannot see broken
image serving, docs/environment.md), run a small on-demand test, compute a t-SNE on the layer
explorer and download the reports. Screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dashboard import (
    REPO,
    DashboardServer,
    wait_for_app,
    wait_for_images,
)

pytestmark = [pytest.mark.app, pytest.mark.browser]

ARTIFACTS = REPO / "test-artifacts" / "dashboard"


@pytest.fixture(scope="module")
def dashboard(s3_server, app_world, app_cache_dir) -> Iterator[DashboardServer]:
    env = {
        **s3_server.environment(),
        "LADIS_S3_URI": app_world.uri,
        "LADIS_CACHE_DIR": str(app_cache_dir),
        "SMDEBUG_LOG_LEVEL": "error",
    }
    with DashboardServer(env, log_path=ARTIFACTS / "streamlit.log") as server:
        yield server


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _open_page(page, label: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_text(label, exact=True).click()
    page.locator("h1").filter(has_text=label).wait_for(timeout=60_000)
    wait_for_app(page)


def test_the_whole_dashboard_in_chromium(dashboard, browser, app_world) -> None:
    incident = next(j for j in reversed(app_world.jobs) if j.incident)
    page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # 0. the fleet overview comes first; a click on the endpoint's row opens its history
    page.goto(dashboard.url)
    page.locator("h1").filter(has_text="Fleet overview").wait_for(timeout=120_000)
    table = page.locator("[data-testid='stDataFrame']").first
    table.wait_for(timeout=60_000)
    wait_for_app(page)
    _shot(page, "0-overview")
    box = table.bounding_box()
    # the row-selection cell of the first data row (under the 35 px header row)
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)
    page.locator("h1").filter(has_text="Monitoring history").wait_for(timeout=60_000)

    # 1. history: timeline, heat map, table
    timeline = page.locator(".js-plotly-plot").first
    timeline.wait_for(timeout=120_000)
    wait_for_app(page)
    assert page.locator("[data-testid='stMetric']").count() >= 5
    assert page.locator("[data-testid='stDataFrame']").count() == 1

    # 2. select the incident by clicking its marker (the "incident" trace) on the timeline
    traces = timeline.locator(".scatterlayer .trace")
    marker = next(
        traces.nth(i).locator("path.point")
        for i in range(traces.count())
        if traces.nth(i).locator("path.point").count() == sum(j.incident for j in app_world.jobs)
    ).last
    box = marker.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text(incident.job_id).wait_for(timeout=60_000)
    wait_for_app(page)
    _shot(page, "1-history")

    # 3. flagged inputs: every image must really load
    _open_page(page, "Flagged inputs")
    page.get_by_text("#1 · step").first.wait_for(timeout=60_000)
    page.get_by_text(incident.job_id).first.wait_for()
    # every image must have settled, and none may have failed (a broken image, e.g. under
    # Starlette >= 1.8, docs/environment.md, is complete with naturalWidth 0)
    widths = wait_for_images(page)
    broken = [src for width, src in widths if not width]
    assert len(widths) >= 3 and not broken, broken
    _shot(page, "2-flagged")

    # 4. a small on-demand test
    _open_page(page, "On-demand test")
    for label, value in (("R (repetitions)", "10"), ("Permutations", "100")):
        field = page.get_by_role("spinbutton", name=label)
        field.fill(value)
    page.get_by_role("button", name="Run test").click()
    page.get_by_text("Result · steps").wait_for(timeout=120_000)
    page.get_by_role("button", name="Save as job").wait_for(timeout=120_000)
    page.locator("[data-testid='stPlotlyChart']").nth(1).wait_for(timeout=60_000)
    wait_for_app(page)
    _shot(page, "3-on-demand")

    # 5. layer explorer: t-SNE on request
    _open_page(page, "Layer explorer")
    page.get_by_role("button", name="Compute t-SNE").click()
    page.get_by_text("Click, box- or lasso-select points").wait_for(timeout=120_000)
    wait_for_app(page)
    assert page.locator(".js-plotly-plot").count() >= 2
    # hovering a point of the t-SNE shows the input behind it
    tsne = page.locator("[data-testid='stPlotlyChart']").nth(1)
    tsne.scroll_into_view_if_needed()
    point = tsne.locator(".scatterlayer .trace path.point").first.bounding_box()
    page.mouse.move(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    card = page.locator("[data-testid='ladisHoverThumbnail']")
    card.wait_for(state="visible", timeout=30_000)
    assert "step" in card.inner_text()
    page.wait_for_function(
        """() => { const i = document.querySelector('[data-testid="ladisHoverThumbnail"] img');
                   return i && i.complete && i.naturalWidth > 0; }""",
        timeout=30_000,
    )
    _shot(page, "4-layers")
    page.mouse.move(5, 5)
    card.wait_for(state="hidden", timeout=30_000)

    # 6. incident report downloads
    _open_page(page, "Incident report")
    with page.expect_download(timeout=120_000) as html_download:
        page.get_by_role("button", name="Download HTML report").click()
    html = Path(html_download.value.path()).read_text(encoding="utf-8")
    assert "<html" in html.lower() and incident.job_id in html
    with page.expect_download(timeout=60_000) as json_download:
        page.get_by_role("button", name="Download JSON").click()
    exported = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    assert incident.job_id in json.dumps(exported)
    _shot(page, "5-report")
    assert not errors, errors
