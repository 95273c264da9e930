"""HTML pages: supply facts, charts wired to the API through a static script, bills formatted for Chile,
404s for what is not the caller's, probes, and error pages without stack traces."""

import re

from portal_testkit import csrf_token_of, snapshot_factory


def test_supply_page_shows_facts_charts_and_bills(logged_in):
    response = logged_in.get("/supplies/30000001")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert csrf_token_of(html)
    assert "Av. Los Aromos 01" in html and "Maipú" in html and "BT1" in html
    assert "00000000-0000-4000-9000-000030000001" in html
    assert "datos hasta el 10-09-2026 00:00" in html
    # bills: period dd-mm-aaaa, kWh with decimal comma, pesos with dot thousands, Spanish status
    assert "01-03-2026 al 31-03-2026" in html
    assert "187,25 kWh" in html
    assert "$35.700" in html
    assert "pendiente" in html and "pagado" in html
    assert 'href="/supplies/30000001/bills/B30000001-202603"' in html
    # the explorer: fed by the API from a static script, 13 whole months ending with the last day with data
    assert 'data-consumption-url="/api/v1/supplies/30000001/consumption"' in html
    assert 'data-granularity="month" data-from="2025-09-01" data-to="2026-09-10"' in html
    assert 'data-last-day="2026-09-09"' in html
    assert "/static/vendor/chart.umd.min.js" in html and "/static/js/explorer.js" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline scripts are not allowed"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_bill_detail_page(logged_in):
    html = logged_in.get("/supplies/30000001/bills/B30000001-202603").get_data(as_text=True)
    assert "Cargo por energía" in html and "$28.800" in html and "$153,80" in html
    assert "Total" in html and "$35.700" in html


def test_supplies_and_bills_of_others_are_404_like_missing_ones(logged_in):
    foreign = logged_in.get("/supplies/30000003")
    missing = logged_in.get("/supplies/39999999")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_data() == missing.get_data()
    assert "No encontramos lo que buscas." in foreign.get_data(as_text=True)
    assert logged_in.get("/supplies/30000003/bills/B30000003-202603").status_code == 404
    assert logged_in.get("/supplies/30000001/bills/B30000003-202603").status_code == 404


def test_every_page_carries_the_csrf_meta_tag(logged_in):
    for path in ("/", "/supplies/30000002", "/supplies/30000001/bills/B30000001-202602", "/no-such-page"):
        html = logged_in.get(path).get_data(as_text=True)
        assert csrf_token_of(html)
        assert '<html lang="es-CL">' in html


def test_healthz_is_ok_without_any_store(tmp_path):
    from webapp import create_app

    app = create_app({"TESTING": True, "AMI_DATA_DIR": tmp_path / "empty", "SECRET_KEY": "k"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_data(as_text=True) == "ok"


def test_readyz_follows_the_read_model(tmp_path):
    from webapp import create_app

    data_dir = tmp_path / "var"
    app = create_app({"TESTING": True, "AMI_DATA_DIR": data_dir, "SECRET_KEY": "k"})
    client = app.test_client()
    assert client.get("/readyz").status_code == 503
    snapshot_factory.write_demo_snapshot(data_dir / "readmodel")
    app.extensions["read_model"]._connections.recheck_seconds = 0
    assert client.get("/readyz").status_code == 200


def test_unpublished_read_model_gives_a_spanish_503_not_a_stack_trace(tmp_path, seeded_data_dir):
    import shutil

    from portal_testkit import ANA
    from webapp import create_app

    data_dir = tmp_path / "var"
    data_dir.mkdir()
    shutil.copy(seeded_data_dir / "accounts.sqlite", data_dir / "accounts.sqlite")
    app = create_app({"TESTING": True, "AMI_DATA_DIR": data_dir, "SECRET_KEY": "k"})
    client = app.test_client()
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": ANA["email"], "password": ANA["password"], "csrf_token": token})
    page = client.get("/")
    assert page.status_code == 503
    assert "Los datos no están disponibles" in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)
    api = client.get("/api/v1/supplies")
    assert api.status_code == 503 and api.is_json


def test_secret_key_is_generated_once_and_private(tmp_path):
    from webapp import create_app

    data_dir = tmp_path / "var"
    first = create_app({"AMI_DATA_DIR": data_dir, "SECRET_KEY": None})
    second = create_app({"AMI_DATA_DIR": data_dir, "SECRET_KEY": None})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 32
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600
