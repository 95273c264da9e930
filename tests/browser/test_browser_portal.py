"""The portal in a real browser: Debian's headless Chromium driven by Playwright against gunicorn.

One customer's journey: log in, the overview, a supply, switch granularity, drill down (mouse and keyboard) and
back up, compare with last year, download the CSV of the range on screen and check it, open a bill and its PDF,
switch to English. On every page axe-core (from node_modules, injected by the test, never served to customers)
must find no serious or critical WCAG 2.1 AA violation, the page must not scroll sideways at 375 px, and the chart's
texts must not overlap. Screenshots go to `<AMI_DATA_DIR or ./var>/screenshots/` for review.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, start_portal

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SCREENSHOTS = Path(os.environ.get("AMI_DATA_DIR") or ROOT / "var") / "screenshots"

_kit_spec = importlib.util.spec_from_file_location("browser_portal_kit", ROOT / "tests" / "portal" / "portal_kit.py")
portal_kit = importlib.util.module_from_spec(_kit_spec)
_kit_spec.loader.exec_module(portal_kit)
ANA = portal_kit.ANA


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    if not AXE_JS.exists():
        pytest.skip("node_modules/axe-core is missing (make install runs npm ci)")
    from webapp.accounts import AccountStore

    data_dir = tmp_path_factory.mktemp("browser")
    portal_kit.write_priced_snapshot(data_dir / "readmodel")
    store = AccountStore(data_dir / "accounts.sqlite")
    store.initialize()
    store.create_user(ANA["email"], ANA["password"], ANA["customer_id"])
    service, url = start_portal(data_dir, data_dir / "logs", workers=1)
    try:
        yield url
    finally:
        service.stop()


@pytest.fixture(scope="module")
def browser(portal):
    playwright = sync_api.sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()


def new_page(browser, portal, width: int, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=portal,
                                  accept_downloads=True, locale="es-CL", timezone_id="America/Santiago")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # the explorer's own requests and every static file must succeed (the live balance partial may answer 503
    # here: this test runs no backend)
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 and ("/consumption" in response.url or "/static/" in response.url
                                           or "/export" in response.url) else None)
    page.js_errors = errors
    return page


def log_in(page):
    page.goto("/login")
    check_page(page, "login")
    page.fill("#email", ANA["email"])
    page.fill("#password", ANA["password"])
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def axe_violations(page) -> list[dict]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                                targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }""",
        WCAG_TAGS,
    )


def check_page(page, name: str) -> None:
    """axe-core finds nothing serious or critical; nothing scrolls sideways; a screenshot for review."""
    page.wait_for_load_state("networkidle")
    serious = [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]
    assert not serious, f"{name}: {serious}"
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: {overflow}px of horizontal scroll at width {page.viewport_size['width']}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{page.viewport_size['width']}px.png"), full_page=True)


def table_rows(page) -> int:
    return page.locator("#explorer-table tbody tr").count()


def wait_for_view(page, title_part: str) -> None:
    page.wait_for_function(
        """(part) => document.getElementById('explorer-title').textContent.includes(part)
                     && !document.getElementById('explorer-summary').textContent.includes('Cargando')
                     && !document.getElementById('explorer-summary').textContent.includes('Loading')""",
        arg=title_part,
    )


def boxes_overlap(first: dict, second: dict) -> bool:
    return not (first["y"] + first["height"] <= second["y"] or second["y"] + second["height"] <= first["y"]
                or first["x"] + first["width"] <= second["x"] or second["x"] + second["width"] <= first["x"])


def click_bar(page, index: int) -> None:
    """A real mouse click on the centre of bar `index` (positions from the chart itself)."""
    position = page.evaluate(
        """(i) => { const bar = window.amiExplorer.chart.getDatasetMeta(0).data[i];
                    return {x: bar.x, y: (bar.y + bar.base) / 2}; }""",
        index,
    )
    page.locator("#explorer-canvas").scroll_into_view_if_needed()
    box = page.locator("#explorer-canvas").bounding_box()
    page.mouse.click(box["x"] + position["x"], box["y"] + position["y"])


@pytest.mark.parametrize("width", [1280, 375])
def test_customer_journey(browser, portal, width):
    page = new_page(browser, portal, width)
    log_in(page)
    check_page(page, "overview")
    assert page.locator(".supply-card").count() == 2

    page.click("text=Suministro 30000001")
    wait_for_view(page, "por mes")
    check_page(page, "supply")
    assert table_rows(page) == 13  # 13 months: September 2025 to September 2026
    frame = page.locator(".chart-frame").bounding_box()
    for selector in ("#explorer-summary", ".legend", ".explorer .hint"):
        text_box = page.locator(selector).first.bounding_box()
        assert not boxes_overlap(frame, text_box), f"{selector} overlaps the chart"
    assert not boxes_overlap(page.locator("#explorer-summary").bounding_box(),
                             page.locator(".legend").bounding_box())
    summary = page.locator("#explorer-summary").text_content()
    assert summary.startswith("Total: ") and "kWh" in summary and "$" in summary

    # granularity: daily over the same 13 months, then the range picker for the DST weeks of April
    page.click("button.granularity[data-granularity=day]")
    wait_for_view(page, "por día")
    assert table_rows(page) == 374
    page.fill("#range-from", "2026-03-30")
    page.fill("#range-to", "2026-04-05")
    page.click("#range-form button[type=submit]")
    wait_for_view(page, "30-03-2026 al 05-04-2026")
    assert table_rows(page) == 7
    qualities = page.locator("#explorer-table td.quality").all_text_contents()
    assert qualities[:4] == ["sin dato", "sin dato", "estimado", "editado"]  # distinct in table and legend
    check_page(page, "supply-days")

    # drill down with the mouse: 4 April (25 hours) -> hourly
    click_bar(page, 5)
    wait_for_view(page, "por hora · 04-04-2026")
    assert table_rows(page) == 25
    # and with the keyboard: focus the chart, move to a bar, Enter drills into 15 minutes, Escape goes back up
    page.focus("#explorer-canvas")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    assert page.locator("#explorer-focus").text_content().startswith("04-04-2026 01:00: ")
    page.keyboard.press("Enter")
    wait_for_view(page, "cada 15 minutos")
    assert table_rows(page) == 100
    page.keyboard.press("Escape")
    wait_for_view(page, "por hora")
    page.click("#drill-up")
    wait_for_view(page, "por día · 30-03-2026")

    # previous / next keep the window length
    page.click("#range-next")
    wait_for_view(page, "06-04-2026 al 12-04-2026")
    page.click("#range-previous")
    wait_for_view(page, "30-03-2026 al 05-04-2026")

    # same period last year: a second series, a legend entry, a table column and a total to compare with
    page.check("#compare")
    page.wait_for_function("() => document.getElementById('explorer-summary').textContent.includes('Año anterior')")
    assert page.locator(".legend-compare").is_visible()
    assert page.evaluate("() => window.amiExplorer.chart.data.datasets.length") == 3

    # pesos instead of kWh (tariff valid each day)
    page.select_option("#unit", "clp")
    assert page.evaluate("() => window.amiExplorer.chart.options.scales.y.title.text") == "$"

    # download the CSV of the range on screen and check it
    page.fill("#range-from", "2026-04-01")
    page.fill("#range-to", "2026-04-01")
    page.click("#range-form button[type=submit]")
    wait_for_view(page, "01-04-2026 al 01-04-2026")
    with page.expect_download() as download_info:
        page.click("#download-csv")
    content = Path(download_info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(content), delimiter=";"))
    assert rows[0] == ["inicio", "fin", "zona", "flujo", "kwh", "calidad"]
    assert len(rows) - 1 == 2 * 96  # delivered and received, every quarter-hour of 1 April
    assert rows[1][0] == "2026-04-01T00:00:00-03:00" and rows[1][2] == "America/Santiago"
    assert "estimada" in {row[5] for row in rows[1:]}

    # a bill, its detail and its PDF
    page.goto("/supplies/30000001")
    page.click("a[href='/supplies/30000001/bills/B30000001-202603']")
    wait_for_view(page, "por día · 01-03-2026 al 31-03-2026")
    check_page(page, "bill")
    assert page.locator("#changes li").count() == 5
    pdf_href = page.get_attribute("#bill-pdf", "href")
    pdf = page.request.get(pdf_href)
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF-")

    # English
    page.click("text=View in English")
    page.wait_for_selector("html[lang=en]")
    wait_for_view(page, "daily")
    check_page(page, "bill-en")
    assert "Why is this bill different from the last one?" in page.content()
    assert page.locator("#explorer-summary").text_content().startswith("Total: ")
    page.goto("/")
    assert "My supplies" in page.content()
    page.click("text=Ver en español")
    page.wait_for_selector("html[lang=es-CL]")

    assert not page.js_errors, page.js_errors
    page.context.close()
