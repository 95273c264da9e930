"""Sessions: server-side invalidation at logout, a new id at login, idle and absolute timeouts, listing and ending
one's sessions, cookie flags, and the production cookie (`__Host-`, Secure) with HSTS."""

from security_testkit import ANA, BRUNO, AuthActions, advance_clock, csrf_token_of, login_client, post_form


def session_cookie(client, name="session"):
    cookie = client.get_cookie(name)
    return cookie.value if cookie else None


def test_a_copied_cookie_stops_working_after_logout(app):
    original = login_client(app)
    stolen = app.test_client()
    stolen.set_cookie("session", session_cookie(original))
    assert stolen.get("/api/v1/supplies").status_code == 200
    assert AuthActions(original).logout().status_code == 302
    # the copy still carries a validly signed cookie, but its server-side session has ended
    assert stolen.get("/api/v1/supplies").status_code == 401
    assert stolen.get("/").status_code == 302


def test_login_issues_a_new_session_and_drops_pre_login_state(app):
    client = app.test_client()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    AuthActions(client).login()
    with client.session_transaction() as session:
        first_sid = session["sid"]
        assert "planted" not in session
    AuthActions(client).logout()
    AuthActions(client).login()
    with client.session_transaction() as session:
        assert session["sid"] != first_sid
    # the previous session id does not come back to life
    replay = app.test_client()
    with replay.session_transaction() as session:
        session.update({"_user_id": "1", "_fresh": True, "sid": first_sid})
    assert replay.get("/api/v1/supplies").status_code == 401


def test_idle_timeout_is_15_minutes(app):
    client = login_client(app)
    advance_clock(app, 14 * 60)
    assert client.get("/api/v1/supplies").status_code == 200
    advance_clock(app, 14 * 60)  # used 14 minutes ago: still alive
    assert client.get("/api/v1/supplies").status_code == 200
    advance_clock(app, 16 * 60)
    assert client.get("/api/v1/supplies").status_code == 401


def test_absolute_timeout_is_8_hours_even_when_active(app):
    client = login_client(app)
    for _ in range(int(8 * 60 / 10) - 1):
        advance_clock(app, 10 * 60)
        assert client.get("/api/v1/supplies").status_code == 200
    advance_clock(app, 11 * 60)
    assert client.get("/api/v1/supplies").status_code == 401


def test_timeouts_are_configurable(make_app):
    app = make_app(SESSION_IDLE_MINUTES=2, SESSION_MAX_HOURS=1)
    client = login_client(app)
    advance_clock(app, 3 * 60)
    assert client.get("/api/v1/supplies").status_code == 401


def test_list_and_end_ones_sessions(app):
    laptop = login_client(app)
    phone = login_client(app)
    bruno = login_client(app, BRUNO)
    page = laptop.get("/account/sessions").get_data(as_text=True)
    assert page.count("/end\"") == 1 and "Esta sesión" in page  # two sessions: this one and one other to end
    other = app.extensions["accounts"].list_sessions(app.extensions["accounts"].find_by_email(ANA["email"]).id,
                                                     900, 8 * 3600)
    assert len(other) == 2
    phone_id = [row["public_id"] for row in other if f"/account/sessions/{row['public_id']}/end" in page][0]
    # another customer cannot end it: 404 like a session that does not exist
    assert post_form(bruno, f"/account/sessions/{phone_id}/end", {}, page="/account").status_code == 404
    assert phone.get("/api/v1/supplies").status_code == 200
    response = post_form(laptop, f"/account/sessions/{phone_id}/end", {}, page="/account/sessions")
    assert response.status_code == 302
    assert phone.get("/api/v1/supplies").status_code == 401
    assert laptop.get("/api/v1/supplies").status_code == 200
    assert post_form(laptop, "/account/sessions/does-not-exist/end", {}, page="/account").status_code == 404


def test_session_cookie_is_httponly_and_samesite(client):
    response = client.post("/login", data={"email": ANA["email"], "password": ANA["password"],
                                           "csrf_token": csrf_token_of(client.get("/login").get_data(as_text=True))})
    set_cookie = response.headers.get("Set-Cookie", "")
    assert set_cookie.startswith("session=")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert "Secure" not in set_cookie  # plain http on the development loopback
    assert "Strict-Transport-Security" not in response.headers


def test_production_cookie_is_host_prefixed_and_secure_with_hsts(make_app):
    app = make_app(PORTAL_PRODUCTION=True)
    client = app.test_client()
    https = "https://localhost"
    page = client.get("/login", base_url=https)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    response = client.post("/login", data={"email": ANA["email"], "password": ANA["password"],
                                           "csrf_token": csrf_token_of(page.get_data(as_text=True))}, base_url=https,
                           headers={"Referer": f"{https}/login"})
    assert response.status_code == 302
    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith("__Host-session=")
    for attribute in ("Secure", "HttpOnly", "Path=/", "SameSite=Lax"):
        assert attribute in set_cookie
    assert "Domain=" not in set_cookie
    assert client.get("/api/v1/supplies", base_url=https).status_code == 200
