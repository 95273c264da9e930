"""Registration: proof of holding the supply (client number + RUT + latest bill total), e-mail verification by a
single-use token, mail to the outbox, the same answer whatever the data, and no consent or delegation step."""

import re

import pytest

from security_testkit import ANA, comparable, csrf_token_of, form_fields, last_link, login_client, outbox, post_form
from webapp.accounts import rut_check_digit, valid_rut

ANA_PROOF = {"client_number": "10000001", "rut": "12.345.678-5", "bill_total": "$35.700"}
NEW_PASSWORD = "mi casa tiene paneles solares"


@pytest.mark.parametrize(("rut", "ok"), [
    ("12.345.678-5", True), ("12345678-5", True), ("123456785", True), ("11.111.111-1", True),
    ("10.000.013-K", True), ("10000013k", True), ("12.345.678-4", False), ("11.111.111-K", False),
    ("1234", False), ("12.345.678-X", False), ("", False),
])
def test_rut_check_digit_is_modulo_11(rut, ok):
    assert valid_rut(rut) is ok


def test_rut_check_digit_k_and_zero():
    assert rut_check_digit("10000013") == "K"
    assert rut_check_digit("6") == "K"
    assert rut_check_digit("12345678") == "5"


def register(client, **fields):
    data = {**ANA_PROOF, "email": "ana.segunda@example.cl", **fields}
    return post_form(client, "/register", data)


def test_registration_form_asks_only_for_proof_and_email_no_consent(client):
    html = client.get("/register").get_data(as_text=True)
    fields = form_fields(html, "/register")
    assert fields == {"csrf_token", "client_number", "rut", "bill_total", "email"}
    assert "checkbox" not in html.split('action="/register"')[1].split("</form>")[0]  # nothing to tick: no consent, no delegation


def test_registration_with_a_valid_proof_mails_a_single_use_link_and_grants_full_access(app, client, data_dir):
    response = register(client)
    assert response.status_code == 200
    assert "Si los datos corresponden a un suministro" in response.get_data(as_text=True)
    [message] = outbox(data_dir)
    assert message["To"] == "ana.segunda@example.cl"
    link = last_link(data_dir)

    page = client.get(link)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert form_fields(html) == {"csrf_token", "password", "password_confirm"}
    response = client.post(link, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD,
                                       "csrf_token": csrf_token_of(html)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    # single use: the link no longer works
    assert client.get(link).status_code == 404
    assert client.post(link, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD,
                                   "csrf_token": csrf_token_of(html)}).status_code == 404

    # a customer who grants nothing has full access to every supply, series and bill
    customer = login_client(app, {"email": "ana.segunda@example.cl", "password": NEW_PASSWORD})
    assert app.extensions["accounts"].list_grants(app.extensions["accounts"].find_by_email(
        "ana.segunda@example.cl").id) == []
    supplies = customer.get("/api/v1/supplies").get_json()
    assert [supply["supply_id"] for supply in supplies] == ["30000001", "30000002"]
    for supply_id in ("30000001", "30000002"):
        assert customer.get(f"/supplies/{supply_id}").status_code == 200
        series = customer.get(f"/api/v1/supplies/{supply_id}/consumption?granularity=day&from=2026-03-25&to=2026-04-12")
        assert series.status_code == 200 and len(series.get_json()["points"]) == 18
        assert customer.get(f"/api/v1/supplies/{supply_id}/bills").status_code == 200
    assert customer.get("/api/v1/supplies/30000001/bills/B30000001-202603").status_code == 200
    assert customer.get("/supplies/30000001/bills/B30000001-202603").status_code == 200


@pytest.mark.parametrize("wrong", [
    {"bill_total": "35701"},                      # wrong bill value
    {"rut": "11.111.111-1"},                      # another customer's RUT
    {"client_number": "19999999"},                # no such client
])
def test_a_wrong_proof_answers_exactly_like_a_right_one_and_sends_nothing(client, data_dir, wrong):
    right = comparable(register(client, email="uno@example.cl").get_data(as_text=True))
    assert len(outbox(data_dir)) == 1
    wrong_answer = register(client, email="uno@example.cl", **wrong)
    assert wrong_answer.status_code == 200
    assert comparable(wrong_answer.get_data(as_text=True)) == right
    assert len(outbox(data_dir)) == 1


def test_registering_an_existing_email_answers_the_same_and_mails_no_token(client, data_dir):
    fresh = comparable(register(client, email="nueva@example.cl").get_data(as_text=True))
    existing = comparable(register(client, email=ANA["email"]).get_data(as_text=True))
    assert existing == fresh
    message = outbox(data_dir)[-1]
    assert message["To"] == ANA["email"]
    assert "/register/verify/" not in message.get_content()
    assert "ya tiene una cuenta" in message.get_content()


def test_invalid_rut_check_digit_is_refused_before_anything_else(client, data_dir):
    response = register(client, rut="12.345.678-4")
    assert "dígito verificador" in response.get_data(as_text=True)
    assert outbox(data_dir) == []


def test_verification_link_expires(app, client, data_dir):
    from security_testkit import advance_clock

    register(client)
    link = last_link(data_dir)
    advance_clock(app, 25 * 3600)
    assert client.get(link).status_code == 404


def test_registration_password_must_follow_the_policy(client, data_dir):
    register(client)
    link = last_link(data_dir)
    html = client.get(link).get_data(as_text=True)
    for bad, message in [("corta", "al menos 12"), ("perez-desde-siempre", "RUT, tu correo ni tu nombre"),
                         ("qwerty123456", "común")]:
        response = client.post(link, data={"password": bad, "password_confirm": bad, "csrf_token": csrf_token_of(html)})
        assert response.status_code == 200 and message in response.get_data(as_text=True)
    assert client.get(link).status_code == 200  # a refused password does not use up the link


def test_mail_goes_through_smtp_when_configured(make_app, data_dir):
    from smtp_sink import SmtpSink

    with SmtpSink() as sink:
        app = make_app(MAIL_SMTP_HOST="127.0.0.1", MAIL_SMTP_PORT=sink.port, MAIL_SMTP_STARTTLS=False)
        client = app.test_client()
        assert register(client).status_code == 200
        assert sink.wait_for(1)
    assert outbox(data_dir) == []
    [(recipients, body)] = sink.messages
    assert recipients == ["ana.segunda@example.cl"]
    assert b"/register/verify/" in body
