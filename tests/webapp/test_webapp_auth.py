"""Logging in and out: CSRF, Spanish failure message, safe `next` redirects, POST-only logout."""

import pytest

from portal_testkit import ANA, BRUNO, csrf_token_of


def test_login_page_is_spanish_with_csrf_meta_and_form_fields(client):
    response = client.get("/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<html lang="es-CL">' in html
    assert csrf_token_of(html)
    for field in ('name="email"', 'name="password"', 'name="csrf_token"'):
        assert field in html


def test_successful_login_redirects_home_and_shows_the_customers_supplies(auth, client):
    response = auth.login()
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "30000001" in home and "30000002" in home and "30000003" not in home
    assert "Maipú" in home


@pytest.mark.parametrize(
    ("email", "password"),
    [(ANA["email"], "otra-clave-cualquiera"), ("nadie@example.cl", "otra-clave-cualquiera"), (ANA["email"], "")],
)
def test_failed_login_reshows_the_form_with_a_spanish_message(auth, client, email, password):
    response = auth.login({"email": email, "password": password})
    assert response.status_code == 200
    assert "Correo o contraseña incorrectos." in response.get_data(as_text=True)
    assert client.get("/api/v1/supplies").status_code == 401


def test_email_is_case_insensitive(auth):
    response = auth.login({"email": "  ANA.Perez@Example.CL ", "password": ANA["password"]})
    assert response.status_code == 302


def test_login_without_csrf_token_is_rejected_with_400(client):
    response = client.post("/login", data={"email": ANA["email"], "password": ANA["password"]})
    assert response.status_code == 400
    assert client.get("/api/v1/supplies").status_code == 401


def test_login_with_a_forged_csrf_token_is_rejected_with_400(client):
    client.get("/login")
    response = client.post(
        "/login", data={"email": ANA["email"], "password": ANA["password"], "csrf_token": "forged"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("next_path", "expected_location"),
    [
        ("/supplies/30000001?x=1", "/supplies/30000001?x=1"),
        ("https://evil.example/phish", "/"),
        ("//evil.example/phish", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_redirect_only_to_local_paths(auth, next_path, expected_location):
    response = auth.login(next_path=next_path)
    assert response.status_code == 302
    assert response.headers["Location"] == expected_location


def test_pages_redirect_to_login_with_next_and_come_back(client, auth):
    response = client.get("/supplies/30000001")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    login_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/supplies/30000001"' in login_page
    assert auth.login(next_path="/supplies/30000001").headers["Location"] == "/supplies/30000001"


def test_logout_is_post_only_and_needs_csrf(logged_in, auth):
    assert logged_in.get("/logout").status_code == 405
    assert logged_in.post("/logout").status_code == 400
    assert logged_in.get("/api/v1/supplies").status_code == 200
    response = auth.logout()
    assert response.status_code == 302
    assert logged_in.get("/api/v1/supplies").status_code == 401


def test_session_is_bound_to_the_client_strong_protection(app, auth, client):
    auth.login(BRUNO)
    assert client.get("/api/v1/supplies").status_code == 200
    other_agent = client.get("/api/v1/supplies", headers={"User-Agent": "something-else/1.0"})
    assert other_agent.status_code == 401
