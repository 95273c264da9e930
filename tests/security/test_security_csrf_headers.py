"""CSRF on every state-changing route (forms and JSON), POST-only logout, safe `next`, and the response headers:
CSP without inline script, HSTS only in production, nosniff, Referrer-Policy, no-store on customer data."""

import re

import pytest
from flask import url_for

from security_testkit import ANA, AuthActions, csrf_token_of, login_client

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def fill(rule) -> dict:
    return {name: "30000001" if name == "supply_id" else "x1" for name in rule.arguments}


def test_every_state_changing_route_refuses_requests_without_a_csrf_token(app):
    client = login_client(app)
    checked = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods & STATE_CHANGING):
            with app.test_request_context():
                path = url_for(rule.endpoint, **fill(rule))
            for body in ({"data": {"x": "1"}}, {"json": {"x": "1"}}):
                response = client.open(path, method=method, **body)
                assert response.status_code == 400, (method, rule.rule, response.status_code)
                text = response.get_json()["error"] if response.is_json else response.get_data(as_text=True)
                assert "no es válida" in text, (method, rule.rule)
            forged = client.open(path, method=method, json={}, headers={"X-CSRFToken": "forged"})
            assert forged.status_code == 400, (method, rule.rule)
            checked.append((method, rule.rule))
    assert ("POST", "/logout") in checked and ("POST", "/api/v1/grants") in checked
    assert ("DELETE", "/api/v1/grants/<grant_id>") in checked
    assert client.get("/api/v1/supplies").status_code == 200  # nothing logged us out


def test_json_posts_work_with_the_x_csrftoken_header(app):
    client = login_client(app)
    token = csrf_token_of(client.get("/").get_data(as_text=True))
    body = {"third_party": "Eficiencia SpA", "supply_ids": ["30000001"], "kinds": ["consumption"],
            "from": "2026-01-01", "to": "2026-07-01"}
    assert client.post("/api/v1/grants", json=body).status_code == 400
    assert client.post("/api/v1/grants", json=body, headers={"X-CSRFToken": token}).status_code == 201


def test_logout_is_post_only(app):
    client = login_client(app)
    assert client.get("/logout").status_code == 405
    assert client.get("/api/v1/supplies").status_code == 200


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example/x", "/\\evil.example",
                                       "javascript:alert(1)", "/%0d%0aLocation:x", "\t/evil"])
def test_next_redirects_only_to_our_own_paths(client, next_path):
    response = AuthActions(client).login(next_path=next_path)
    assert response.status_code == 302
    assert response.headers["Location"] in ("/", "/%0d%0aLocation:x")


def pages(app, client) -> list[str]:
    """Every GET page without arguments, plus pages with our own ids."""
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith("/api/"):
            paths.append(rule.rule)
    return paths + ["/supplies/30000001", "/supplies/30000001/bills/B30000001-202603"]


def test_csp_forbids_inline_script_and_pages_have_none(app):
    client = login_client(app)
    anonymous = app.test_client()
    seen = 0
    for who in (client, anonymous):
        for path in pages(app, client) + ["/login", "/register", "/password/forgot"]:
            response = who.get(path)
            if response.mimetype != "text/html":
                continue
            seen += 1
            csp = response.headers["Content-Security-Policy"]
            directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
            assert directives["script-src"] == "'self'"
            assert directives["object-src"] == "'none'"
            assert directives["base-uri"] == "'none'"
            assert directives["frame-ancestors"] == "'none'"
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            html = response.get_data(as_text=True)
            for script in re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S):
                assert "src=" in script[0] and not script[1].strip(), (path, script)
            assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), path  # no inline event handlers
            assert 'href="javascript:' not in html
    assert seen >= 10


def test_common_headers_and_no_store_on_customer_data(app):
    client = login_client(app)
    for path in ("/", "/supplies/30000001", "/api/v1/supplies", "/api/v1/supplies/30000001/bills", "/login",
                 "/account/sessions"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "same-origin", path
        assert response.headers["Cache-Control"] == "no-store", path
        assert "Content-Security-Policy" in response.headers
        assert "Strict-Transport-Security" not in response.headers  # development: plain http


def test_hsts_in_production(make_app):
    app = make_app(PORTAL_PRODUCTION=True)
    response = app.test_client().get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert ANA
