"""Pages: the overview, the supply page (facts, explorer, forecast, downloads), a bill with what changed and its
PDF, the "all my data" zip, and the Spanish/English switch with each language's number formats."""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib

from portal_kit import csrf_token_of, snapshot_factory


def html_of(client, path):
    response = client.get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def test_overview_lists_each_supply_with_freshness_and_its_latest_bill(ana):
    html = html_of(ana, "/")
    assert html.count('class="card supply-card"') == 2
    assert "Suministro 30000001" in html and "Suministro 30000002" in html and "30000003" not in html
    assert "datos hasta el 10-09-2026 00:00" in html
    assert "$35.700" in html and "vence el 21-04-2026" in html
    assert 'href="/account/export.zip"' in html


def test_supply_page_has_the_explorer_forecast_and_download_buttons(ana):
    html = html_of(ana, "/supplies/30000001")
    for granularity in ("15min", "hour", "day", "month", "billing_period"):
        assert f'data-granularity="{granularity}"' in html
    assert 'id="range-from"' in html and 'id="range-previous"' in html and 'id="drill-up"' in html
    assert 'id="compare"' in html and '<option value="net">' in html  # solar supply: delivered/received/net
    assert 'href="/api/v1/supplies/30000001/export.csv"' in html
    assert 'href="/api/v1/supplies/30000001/export/greenbutton.xml"' in html
    for swatch in ("actual", "estimated", "edited", "missing"):
        assert f"swatch-{swatch}" in html
    assert 'id="explorer-table"' in html and 'tabindex="0"' in html
    assert 'data-prices="yes"' in html
    assert "Días con lectura completa: 9 de 30." in html and "al menos 10 días" in html
    plain = html_of(ana, "/supplies/30000002")
    assert '<option value="net">' not in plain  # no solar, no flow choice


def test_the_chart_text_sits_outside_the_fixed_height_chart_frame(ana):
    """The 15-minute chart's total line and legend printed on top of each other when they shared the canvas'
    fixed-height box; now only the canvas is inside it."""
    html = html_of(ana, "/supplies/30000001")
    frame = re.search(r'<div class="chart-frame">(.*?)</div>', html, re.S).group(1)
    assert "<canvas" in frame and "chart-status" not in frame and "legend" not in frame
    css = (snapshot_factory.Path(__file__).resolve().parents[2] / "webapp/static/css/portal.css").read_text()
    assert re.search(r"\.chart-frame \{[^}]*height: 18rem", css)


def test_bill_page_shows_status_due_date_lines_and_what_changed(ana):
    html = html_of(ana, "/supplies/30000001/bills/B30000001-202603")
    assert "pendiente" in html and "vence el 21-04-2026" in html
    assert "Cargo por energía" in html and "$153,80" in html and "$35.700" in html
    assert "¿Por qué esta boleta es distinta de la anterior?" in html
    assert "Días del período: 31 frente a 28." in html
    assert "La tarifa de energía no cambió ($153,80 por kWh)." in html
    assert 'data-granularity="day" data-from="2026-03-01" data-to="2026-04-01"' in html
    assert 'href="/supplies/30000001/bills/B30000001-202603.pdf"' in html
    first = html_of(ana, "/supplies/30000001/bills/B30000001-202602")
    assert "Es tu primera boleta" in first


def pdf_text(body: bytes) -> str:
    texts = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S):
        try:
            texts.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            texts.append(stream.decode("latin-1"))
    return "\n".join(texts)


def test_bill_pdf(ana):
    response = ana.get("/supplies/30000001/bills/B30000001-202603.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    body = response.get_data()
    assert body.startswith(b"%PDF-")
    text = pdf_text(body)
    for expected in ("Boleta B30000001-202603", "Ana P\xe9rez", "01-03-2026 al 31-03-2026", "21-04-2026",
                     "Pendiente de pago", "Cargo por energ\xeda", "$35.700", "Consumo diario"):
        assert expected in text, expected
    assert ana.get("/supplies/30000003/bills/B30000003-202603.pdf").status_code == 404


def test_all_my_data_zip_holds_only_the_customers_own_data(ana):
    response = ana.get("/account/export.zip")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    names = set(archive.namelist())
    assert {"README.txt", "account.json", "supplies.csv", "bills.csv", "bill_lines.csv", "tariffs.csv",
            "readings/30000001-intervals.csv", "readings/30000002-daily.csv"} <= names
    assert not any("30000003" in name for name in names)
    supplies = list(csv.DictReader(io.TextIOWrapper(archive.open("supplies.csv"), encoding="utf-8")))
    assert [row["supply_id"] for row in supplies] == ["30000001", "30000002"]
    intervals = list(csv.DictReader(io.TextIOWrapper(archive.open("readings/30000001-intervals.csv"),
                                                     encoding="utf-8")))
    world = snapshot_factory.demo_world()
    stored = [row for row in world["intervals"] if row["supply_id"] == "30000001"]
    assert len(intervals) == len(stored)
    assert {row["quality"] for row in intervals} == {"actual", "estimated", "edited", "missing"}
    bills = list(csv.DictReader(io.TextIOWrapper(archive.open("bills.csv"), encoding="utf-8")))
    assert sorted(row["bill_id"] for row in bills) == ["B30000001-202602", "B30000001-202603"]
    assert '"C000001"' in archive.read("account.json").decode("utf-8")
    assert "separador coma" in archive.read("README.txt").decode("utf-8")


def test_language_switch_to_english_and_back(ana):
    spanish = html_of(ana, "/supplies/30000001")
    assert '<html lang="es-CL">' in spanish and "187,25 kWh" in spanish and "$35.700" in spanish
    token = csrf_token_of(spanish)
    response = ana.post("/language", data={"lang": "en", "next": "/supplies/30000001", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/supplies/30000001")
    english = html_of(ana, "/supplies/30000001")
    assert '<html lang="en">' in english
    assert "My supplies" in english and "Bills" in english and "Download CSV" in english
    assert "187.25 kWh" in english and "$35,700" in english and "unpaid" in english
    assert "01-03-2026 to 31-03-2026" in english  # dates stay dd-mm-yyyy
    assert 'data-lang="en"' in english
    bill = html_of(ana, "/supplies/30000001/bills/B30000001-202603")
    assert "Energy charge" in bill and "Why is this bill different from the last one?" in bill
    ana.post("/language", data={"lang": "es", "next": "/", "csrf_token": csrf_token_of(english)})
    assert "Mis suministros" in html_of(ana, "/")


def test_language_switch_refuses_foreign_redirects(ana):
    token = csrf_token_of(html_of(ana, "/"))
    response = ana.post("/language", data={"lang": "en", "next": "//evil.example/", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/"
