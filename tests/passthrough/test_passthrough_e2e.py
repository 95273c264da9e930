"""The live contract endpoints through the real portal (gunicorn, two workers) and the real simulator: the
supply page carries the live section, the balance is live, an on-demand read goes 202 -> pending -> done
across workers, and each call leaves a log line with backend, CorrelationID, duration and outcome."""

from __future__ import annotations

import re
import time

import pytest

from live_testkit import PASSWORD, build_data_dir, clear_faults, set_fault, set_headend
from tests.conftest import login, start_portal

pytestmark = pytest.mark.e2e


@pytest.fixture
def portal(tmp_path, simulator, monkeypatch):
    data_dir = tmp_path / "var"
    world = build_data_dir(data_dir, simulator["url"])
    monkeypatch.setenv("AMI_BACKEND_URL", simulator["url"])
    monkeypatch.setenv("PASSTHROUGH_DEADLINE_S", "1")
    service, url = start_portal(data_dir, tmp_path / "logs", workers=2)
    yield url, world, service
    service.stop()


def test_live_endpoints_through_gunicorn(portal, simulator):
    url, world, service = portal
    set_headend(simulator["url"], 0.3, 0.5, 0.0)
    client = login(url, world["email"], PASSWORD)
    supply_id = world["supply"]["supply_id"]
    page = client.get(f"/supplies/{supply_id}").text
    assert f'data-balance-url="/api/v1/supplies/{supply_id}/balance"' in page
    assert "/static/js/live.js" in page
    assert client.get("/static/js/live.js").status_code == 200
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)

    balance = client.get(f"/api/v1/supplies/{supply_id}/balance").json()
    assert balance["stale"] is False and isinstance(balance["amount_due_clp"], int)
    set_fault(simulator["url"], "billing", "hang")
    stale = client.get(f"/api/v1/supplies/{supply_id}/balance").json()
    assert stale["stale"] is True and stale["amount_due_clp"] == balance["amount_due_clp"]
    clear_faults(simulator["url"])

    accepted = client.post(f"/api/v1/supplies/{supply_id}/meter-reads", headers={"X-CSRFToken": csrf})
    assert accepted.status_code == 202, accepted.text
    status_url = accepted.json()["status_url"]
    deadline = time.monotonic() + 20
    body = client.get(status_url).json()
    while body["state"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        body = client.get(status_url).json()  # successive polls land on either worker
    assert body["state"] == "done" and body["validated"] is False and body["value_kwh"] > 0
    again = client.post(f"/api/v1/supplies/{supply_id}/meter-reads", headers={"X-CSRFToken": csrf})
    assert again.status_code == 429 and again.json()["error"].startswith("Ya solicitaste una lectura")
    assert client.get(f"/api/v1/supplies/{supply_id}/today").status_code == 200
    client.close()

    log = service.log_path.read_text()
    assert re.search(r"passthrough call backend=billing operation='get AccountBalance' correlation_id=[0-9a-f-]{36} "
                     r"attempt=1 duration_ms=[0-9.]+ outcome=ok", log)
    assert re.search(r"passthrough call backend=billing .* outcome=timeout", log)
    assert re.search(r"passthrough call backend=headend operation='create MeterReadings' .* outcome=ok", log)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def test_supply_page_shows_balance_and_an_on_demand_read_in_a_browser(portal, simulator):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    url, world, _ = portal
    set_headend(simulator["url"], 0.3, 0.5, 0.0)
    supply_id = world["supply"]["supply_id"]
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/login")
            page.fill("input[name=email]", world["email"])
            page.fill("input[name=password]", PASSWORD)
            page.click("form button[type=submit], form input[type=submit]")
            page.goto(f"{url}/supplies/{supply_id}")
            amount = page.locator("#live .live-balance-amount")
            playwright_api.expect(amount).to_contain_text("$", timeout=10_000)
            playwright_api.expect(page.locator("#live .live-balance-details")).to_contain_text("Consultado el ")
            page.click("#live .live-read-button")
            status = page.locator("#live .live-read-status")
            playwright_api.expect(status).to_contain_text("Lectura: ", timeout=15_000)
            playwright_api.expect(status).to_contain_text("aún no validado")
            playwright_api.expect(page.locator("#live-today-chart .chart-status")).to_contain_text("provisional")
        finally:
            browser.close()


def test_openapi_describes_the_live_endpoints(app):
    paths = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    assert "get" in paths["/supplies/{supply_id}/balance"]
    assert "202" in paths["/supplies/{supply_id}/meter-reads"]["post"]["responses"]
    assert "get" in paths["/supplies/{supply_id}/meter-reads/{read_id}"]
    assert "get" in paths["/supplies/{supply_id}/today"]
