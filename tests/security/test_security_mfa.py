"""Optional second factor: TOTP with recovery codes, one use per code, and MFA required by configuration."""

import re

import pyotp

from security_testkit import ANA, AuthActions, csrf_token_of, login_client, post_form


def enable_mfa(client) -> tuple[str, list[str]]:
    post_form(client, "/account/mfa/setup", {}, page="/account/mfa")
    page = client.get("/account/mfa").get_data(as_text=True)
    secret = re.search(r'class="totp-secret">([A-Z2-7]+)<', page).group(1)
    response = post_form(client, "/account/mfa/enable", {"code": pyotp.TOTP(secret).now()}, page="/account/mfa")
    assert response.status_code == 200
    codes = re.findall(r"<li><code>([0-9a-f]{8}-[0-9a-f]{8})</code></li>", response.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def password_step(client):
    return AuthActions(client).login()


def test_totp_is_asked_after_the_password_and_each_code_works_once(app):
    client = login_client(app)
    secret, _ = enable_mfa(client)
    AuthActions(client).logout()

    response = password_step(client)
    assert response.headers["Location"] == "/login/mfa"
    assert client.get("/api/v1/supplies").status_code == 401  # the password alone is not enough
    assert post_form(client, "/login/mfa", {"code": "000000"}).status_code == 200
    assert client.get("/api/v1/supplies").status_code == 401
    code = pyotp.TOTP(secret).now()
    assert post_form(client, "/login/mfa", {"code": code}).status_code == 302
    assert client.get("/api/v1/supplies").status_code == 200

    AuthActions(client).logout()
    password_step(client)
    replay = post_form(client, "/login/mfa", {"code": code})
    assert replay.status_code == 200 and "no es válido" in replay.get_data(as_text=True)


def test_recovery_codes_work_once(app):
    client = login_client(app)
    _, codes = enable_mfa(client)
    AuthActions(client).logout()
    password_step(client)
    assert post_form(client, "/login/mfa", {"code": codes[0]}).status_code == 302
    AuthActions(client).logout()
    password_step(client)
    assert post_form(client, "/login/mfa", {"code": codes[0]}).status_code == 200
    assert post_form(client, "/login/mfa", {"code": codes[1]}).status_code == 302


def test_wrong_enable_code_leaves_mfa_off_and_disable_needs_password_and_code(app):
    client = login_client(app)
    post_form(client, "/account/mfa/setup", {}, page="/account/mfa")
    assert post_form(client, "/account/mfa/enable", {"code": "123456"}, page="/account/mfa").status_code == 400
    assert not app.extensions["accounts"].get_user(1).mfa_enabled
    secret, _ = enable_mfa(client)
    assert post_form(client, "/account/mfa/disable", {"password": ANA["password"], "code": "000000"},
                     page="/account/mfa").status_code == 400
    assert app.extensions["accounts"].get_user(1).mfa_enabled
    assert post_form(client, "/account/mfa/disable", {"password": ANA["password"], "code": pyotp.TOTP(secret).now()},
                     page="/account/mfa").status_code == 302
    assert not app.extensions["accounts"].get_user(1).mfa_enabled


def test_configuration_can_require_a_second_factor(make_app):
    app = make_app(MFA_REQUIRED=True)
    client = login_client(app)
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/account/mfa"
    assert client.get("/api/v1/supplies").status_code == 403
    enable_mfa(client)
    assert client.get("/api/v1/supplies").status_code == 200
