"""The audit log: security events in the accounts store, UTC timestamps, and no secrets."""

import re

import pyotp

from security_testkit import ANA, AuthActions, csrf_token_of, last_link, login_client, post_form


def test_security_events_are_logged_in_utc_without_secrets(app, data_dir):
    from test_security_mfa import enable_mfa

    client = app.test_client()
    for _ in range(6):
        AuthActions(client).login(password="no-es-la-clave-1")
    AuthActions(client).login({"email": "nadie@example.cl", "password": "tampoco-es-la-clave"})
    store = app.extensions["accounts"]
    store.clock = lambda: __import__("time").time() + 3600  # the lockout is over

    client = login_client(app)
    session_secret = client.get_cookie("session").value
    secret, codes = enable_mfa(client)
    token = csrf_token_of(client.get("/").get_data(as_text=True))
    grant = client.post("/api/v1/grants", json={"third_party": "Tercero", "supply_ids": ["30000001"],
                                                "kinds": ["bills"], "from": "2026-01-01", "to": "2026-06-01"},
                        headers={"X-CSRFToken": token}).get_json()
    client.delete(f"/api/v1/grants/{grant['grant_id']}", headers={"X-CSRFToken": token})
    post_form(client, "/password/forgot", {"email": ANA["email"]})
    reset_link = last_link(data_dir)
    html = client.get(reset_link).get_data(as_text=True)
    client.post(reset_link, data={"password": "nueva frase secreta larga", "password_confirm":
                                  "nueva frase secreta larga", "csrf_token": csrf_token_of(html)})

    events = store.audit_events()
    kinds = {event["event"] for event in events}
    for expected in ("login.failure", "login.lockout", "login.throttled", "login.success", "mfa.enabled",
                     "grant.created", "grant.revoked", "password.reset_requested", "password.reset"):
        assert expected in kinds, expected
    for event in events:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00", event["at"])
    everything = repr(events)
    secrets = [ANA["password"], "no-es-la-clave-1", "tampoco-es-la-clave", "nueva frase secreta larga", secret,
               grant["token"], reset_link.rsplit("/", 1)[1], session_secret, "nadie@example.cl", *codes]
    for value in secrets:
        assert value not in everything
    ana_id = store.find_by_email(ANA["email"]).id
    assert any(event["event"] == "login.failure" and event["user_id"] == ana_id for event in events)
    assert pyotp  # the MFA helper uses it
