"""Login throttling (per account with exponential backoff, per client), no account enumeration, password reset
by a single-use expiring token, change of password, and the password policy."""

import gzip
import re

import pytest
from argon2 import PasswordHasher

from security_testkit import (
    ANA,
    BRUNO,
    AuthActions,
    advance_clock,
    comparable,
    csrf_token_of,
    last_link,
    login_client,
    outbox,
    post_form,
)
from webapp.security import account_key as security_account_key
from webapp.accounts import COMMON_PASSWORDS_FILE, AccountStore, WeakPassword, password_problem


def attempt(client, email, password):
    return AuthActions(client).login({"email": email, "password": password})


# -- throttling ----------------------------------------------------------------------------------------------------


def test_five_failures_block_the_account_even_for_the_right_password(app, client):
    for _ in range(5):
        assert attempt(client, ANA["email"], "no-es-la-clave-1").status_code == 200
    blocked = attempt(client, ANA["email"], ANA["password"])
    assert blocked.status_code == 429
    assert "Demasiados intentos" in blocked.get_data(as_text=True)
    assert client.get("/api/v1/supplies").status_code == 401
    # another account from another client is not affected
    assert login_client(app, BRUNO).get("/api/v1/supplies").status_code == 200


def test_backoff_grows_exponentially_up_to_15_minutes(app, client):
    store = app.extensions["accounts"]
    frozen = [1_800_000_000]
    store.clock = lambda: frozen[0]
    key = security_account_key(ANA["email"])
    for _ in range(5):
        attempt(client, ANA["email"], "no-es-la-clave-1")
    delays = []
    for _ in range(8):
        delays.append(store.blocked_until([key]) - frozen[0])
        assert attempt(client, ANA["email"], ANA["password"]).status_code == 429
        frozen[0] += delays[-1]  # the first moment the block is over
        attempt(client, ANA["email"], "no-es-la-clave-1")
    assert delays == [30, 60, 120, 240, 480, 900, 900, 900]


def test_the_right_password_works_again_once_the_delay_has_passed(app, client):
    for _ in range(5):
        attempt(client, ANA["email"], "no-es-la-clave-1")
    assert attempt(client, ANA["email"], ANA["password"]).status_code == 429
    advance_clock(app, 31)
    assert attempt(client, ANA["email"], ANA["password"]).status_code == 302


def test_failures_older_than_15_minutes_are_forgotten(app, client):
    for _ in range(4):
        attempt(client, ANA["email"], "no-es-la-clave-1")
    advance_clock(app, 16 * 60)
    attempt(client, ANA["email"], "no-es-la-clave-1")
    assert attempt(client, ANA["email"], ANA["password"]).status_code == 302


def test_per_client_limit_across_many_accounts(make_app):
    app = make_app(LOGIN_CLIENT_MAX_FAILURES=8)
    client = app.test_client()
    for number in range(8):
        assert attempt(client, f"persona{number}@example.cl", "no-es-la-clave-1").status_code == 200
    # this client is now slowed down even for an account it never tried
    assert attempt(client, BRUNO["email"], BRUNO["password"]).status_code == 429
    other_client = app.test_client()
    other_client.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert attempt(other_client, BRUNO["email"], BRUNO["password"]).status_code == 302


def test_mfa_codes_are_throttled_too(app):
    from test_security_mfa import enable_mfa

    client = login_client(app)
    enable_mfa(client)
    AuthActions(client).logout()
    attempt(client, ANA["email"], ANA["password"])
    for _ in range(5):
        post_form(client, "/login/mfa", {"code": "000000"})
    assert post_form(client, "/login/mfa", {"code": "000000"}).status_code == 429


# -- no enumeration ------------------------------------------------------------------------------------------------


def test_login_answers_the_same_for_unknown_and_known_accounts(client):
    known = attempt(client, ANA["email"], "no-es-la-clave-1")
    unknown = attempt(client, "nadie@example.cl", "no-es-la-clave-1")
    assert known.status_code == unknown.status_code == 200
    assert comparable(known.get_data(as_text=True), ANA["email"]) == comparable(
        unknown.get_data(as_text=True), "nadie@example.cl")
    for _ in range(4):
        attempt(client, ANA["email"], "x" * 12)
        attempt(client, "nadie@example.cl", "x" * 12)
    known, unknown = attempt(client, ANA["email"], "x" * 12), attempt(client, "nadie@example.cl", "x" * 12)
    assert known.status_code == unknown.status_code == 429
    assert comparable(known.get_data(as_text=True), ANA["email"]) == comparable(
        unknown.get_data(as_text=True), "nadie@example.cl")


def test_reset_answers_the_same_for_unknown_and_known_accounts(client, data_dir):
    known = post_form(client, "/password/forgot", {"email": ANA["email"]})
    unknown = post_form(client, "/password/forgot", {"email": "nadie@example.cl"})
    assert known.status_code == unknown.status_code == 200
    assert comparable(known.get_data(as_text=True)) == comparable(unknown.get_data(as_text=True))
    assert [message["To"] for message in outbox(data_dir)] == [ANA["email"]]


# -- password reset and change -------------------------------------------------------------------------------------


def test_password_reset_by_single_use_link_ends_every_session(app, client, data_dir):
    elsewhere = login_client(app)
    post_form(client, "/password/forgot", {"email": ANA["email"]})
    link = last_link(data_dir)
    html = client.get(link).get_data(as_text=True)
    new_password = "una tarde de lluvia en ñuñoa"
    response = client.post(link, data={"password": new_password, "password_confirm": new_password,
                                       "csrf_token": csrf_token_of(html)})
    assert response.status_code == 302
    assert elsewhere.get("/api/v1/supplies").status_code == 401
    assert client.get(link).status_code == 404  # single use
    assert attempt(app.test_client(), ANA["email"], ANA["password"]).status_code == 200
    assert attempt(app.test_client(), ANA["email"], new_password).status_code == 302


def test_password_reset_link_expires_after_30_minutes(app, client, data_dir):
    post_form(client, "/password/forgot", {"email": ANA["email"]})
    link = last_link(data_dir)
    advance_clock(app, 29 * 60)
    assert client.get(link).status_code == 200
    advance_clock(app, 2 * 60)
    assert client.get(link).status_code == 404


def test_change_password_needs_the_current_one_and_ends_other_sessions(app):
    client = login_client(app)
    other = login_client(app)
    wrong = post_form(client, "/account/password", {"current_password": "no-es-la-clave-1",
                                                     "password": "otra frase bien larga", "password_confirm":
                                                     "otra frase bien larga"})
    assert "no es correcta" in wrong.get_data(as_text=True)
    response = post_form(client, "/account/password", {"current_password": ANA["password"],
                                                        "password": "otra frase bien larga",
                                                        "password_confirm": "otra frase bien larga"})
    assert response.status_code == 302
    assert client.get("/api/v1/supplies").status_code == 200
    assert other.get("/api/v1/supplies").status_code == 401
    assert attempt(app.test_client(), ANA["email"], "otra frase bien larga").status_code == 302


def test_security_changes_are_notified_by_mail(app, data_dir):
    from test_security_mfa import enable_mfa

    client = login_client(app)
    post_form(client, "/account/password", {"current_password": ANA["password"], "password": "otra frase bien larga",
                                            "password_confirm": "otra frase bien larga"})
    enable_mfa(client)
    notices = [message for message in outbox(data_dir) if message["Subject"] == "Cambio en la seguridad de tu cuenta"]
    assert [message["To"] for message in notices] == [ANA["email"]] * 2
    assert "La contraseña de tu cuenta cambió." in notices[0].get_content()
    assert "verificación en dos pasos" in notices[1].get_content()


def test_demo_accounts_keep_working(app, tmp_path):
    store = app.extensions["accounts"]
    rows = store.ensure_demo_accounts(app.extensions["read_model"], tmp_path / "demo-accounts.csv")
    for row in rows:
        if row["email"] == "bruno.soto@example.cl":
            continue  # created by the fixture with a known password, not listed
    fresh = AccountStore(tmp_path / "fresh.sqlite")
    fresh.initialize()
    rows = fresh.ensure_demo_accounts(app.extensions["read_model"], tmp_path / "fresh.csv")
    assert rows and all(password_problem(row["password"]) is None for row in rows)
    assert fresh.authenticate(rows[0]["email"], rows[0]["password"]) is not None


# -- password policy -----------------------------------------------------------------------------------------------


def test_hashes_are_argon2id_with_at_least_owasp_parameters(app):
    store = app.extensions["accounts"]
    encoded = store.hasher.hash("una frase cualquiera")
    match = re.match(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", encoded)
    assert match
    memory_kib, time_cost, parallelism = map(int, match.groups())
    # OWASP: m=19 MiB, t=2, p=1 is the minimum; more memory may trade for fewer passes
    assert memory_kib >= 19 * 1024 and time_cost >= 2 and parallelism >= 1
    assert isinstance(store.hasher, PasswordHasher)


@pytest.mark.parametrize(("password", "accepted"), [
    ("a" * 11, False), ("sol de enero", True), ("minúsculas sin números", True), ("x" * 64 + "y", True),
    ("z" * 60 + "ab" * 34, True), ("w" * 129, False),
])
def test_length_rules_and_no_composition_rules(password, accepted):
    assert (password_problem(password) is None) is accepted


def test_at_least_10000_common_passwords_are_refused():
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as handle:
        listed = [line.strip() for line in handle if line.strip()]
    assert len(listed) >= 10000
    long_ones = [password for password in listed if len(password) >= 12]
    assert len(long_ones) > 50
    for password in long_ones[:: max(1, len(long_ones) // 50)]:
        assert password_problem(password) == "Esa contraseña es demasiado común. Elige otra."


@pytest.mark.parametrize("password", ["12345678-mi-clave", "clave-ana.perez-2026", "perezperezperez", "Pérez en casa 1"])
def test_passwords_made_of_the_customers_rut_email_or_name_are_refused(password):
    personal = ["12.345.678-5", "Ana Pérez", "ana.perez@example.cl"]
    assert "RUT" in password_problem(password, personal)


def test_change_password_refuses_a_personal_password(app):
    client = login_client(app)
    response = post_form(client, "/account/password", {"current_password": ANA["password"],
                                                        "password": "ana perez 12345678",
                                                        "password_confirm": "ana perez 12345678"})
    assert "RUT, tu correo ni tu nombre" in response.get_data(as_text=True)
    with pytest.raises(WeakPassword):
        app.extensions["accounts"].set_password(1, "password1234")
