"""The accounts store against both engines: SQLite (default) and PostgreSQL (when AMI_TEST_POSTGRES_URL is set,
as CI does). Migrations, users, sessions, single-use tokens, throttling shared between store instances (as between
gunicorn workers), grants, the audit log, and the whole portal running on PostgreSQL."""

import os
import secrets
import threading
from urllib.parse import quote

import pytest

from security_testkit import ANA, AuthActions, login_client
from webapp import create_app
from webapp.accounts import MIGRATIONS, AccountStore, DuplicateEmail, WeakPassword

POSTGRES_URL = os.environ.get("AMI_TEST_POSTGRES_URL")


def postgres_schema_url() -> str:
    """A fresh schema per test, named in the URL's search_path."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return tmp_path / "accounts.sqlite"
    if not POSTGRES_URL:
        pytest.skip("AMI_TEST_POSTGRES_URL is not set (CI sets it)")
    return postgres_schema_url()


@pytest.fixture
def store(location):
    store = AccountStore(location)
    store.initialize()
    return store


def test_migrations_apply_once_and_are_recorded(location):
    first = AccountStore(location)
    first.initialize()
    AccountStore(location).initialize()
    assert first.schema_version() == MIGRATIONS[-1][0]
    with first._connect() as connection:
        rows = connection.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [row[0] for row in rows] == [version for version, _, _ in MIGRATIONS]


@pytest.mark.parametrize("round_", range(20))  # a race: one round in a few dozen used to lose it
def test_concurrent_initialisation_from_many_workers(location, round_):
    errors = []

    def initialise():
        try:
            AccountStore(location).initialize()
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=initialise) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert AccountStore(location).schema_version() == MIGRATIONS[-1][0]


def test_users_passwords_and_duplicates(store):
    user = store.create_user("Cliente@Example.CL", "una clave bien larga", "C000009")
    assert user.email == "cliente@example.cl"
    assert store.authenticate("cliente@example.cl", "una clave bien larga") == user
    assert store.authenticate("cliente@example.cl", "otra clave bien larga") is None
    assert store.authenticate("otro@example.cl", "una clave bien larga") is None
    with pytest.raises(DuplicateEmail):
        store.create_user("CLIENTE@example.cl", "una clave bien larga", "C000010")
    with pytest.raises(WeakPassword):
        store.create_user("dos@example.cl", "qwerty123456", "C000010")
    with store._connect() as connection:
        (password_hash,) = connection.execute("SELECT password_hash FROM users").fetchone()
    assert password_hash.startswith("$argon2id$")


def test_sessions_are_shared_between_store_instances_and_end_on_the_server(store, location):
    user = store.create_user("s@example.cl", "una clave bien larga", "C1")
    token = store.start_session(user.id, "agent", "127.0.0.1")
    other_worker = AccountStore(location)
    assert other_worker.check_session(token, user.id, 900, 28800)
    assert not other_worker.check_session(token, user.id + 1, 900, 28800)
    store.end_session(token)
    assert not other_worker.check_session(token, user.id, 900, 28800)
    with store._connect() as connection:
        stored = [row[0] for row in connection.execute("SELECT token_hash FROM sessions").fetchall()]
    assert token not in stored  # only digests are stored


def test_tokens_are_single_use_even_under_concurrency(store):
    token = store.issue_token("reset_password", 600, user_id=None, payload={"k": 1})
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.consume_token("reset_password", token)))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in results) == 1
    assert store.consume_token("verify_email", store.issue_token("reset_password", 600)) is None


def test_throttling_counts_across_store_instances(location, store):
    workers = [AccountStore(location) for _ in range(2)]
    results = []
    threads = [threading.Thread(target=lambda worker=worker: results.append(
        worker.record_failure("account:x", 5, 900, 30, 900))) for worker in workers * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # six failures from two "workers": the fifth and sixth block, and both instances see it
    assert sum(1 for result in results if result) == 2
    assert workers[0].blocked_until(["account:x"]) and workers[1].blocked_until(["account:x", "client:y"])
    store.clear_failures("account:x")
    assert not workers[1].blocked_until(["account:x"])


def test_grants_and_audit(store):
    user = store.create_user("g@example.cl", "una clave bien larga", "C1")
    grant, token = store.create_grant(user, "Tercero", ["1", "2"], ["bills"], "2026-01-01", "2026-02-01",
                                      store.now() + 60)
    assert store.active_grant_for_token(token)["supply_ids"] == ["1", "2"]
    assert store.revoke_grant(user.id, grant["grant_id"])
    assert store.active_grant_for_token(token) is None
    assert not store.revoke_grant(user.id, grant["grant_id"])
    store.audit("grant.revoked", user.id, "127.0.0.1", grant_id=grant["grant_id"])
    [event] = store.audit_events(user.id)
    assert event["event"] == "grant.revoked" and event["at"].endswith("+00:00")


def test_the_portal_runs_on_postgresql_when_database_url_says_so(tmp_path):
    if not POSTGRES_URL:
        pytest.skip("AMI_TEST_POSTGRES_URL is not set (CI sets it)")
    from security_testkit import snapshot_factory

    url = postgres_schema_url()
    snapshot_factory.write_demo_snapshot(tmp_path / "readmodel")
    app = create_app({"TESTING": True, "AMI_DATA_DIR": tmp_path, "SECRET_KEY": "k", "DATABASE_URL": url})
    try:
        store = app.extensions["accounts"]
        assert store.engine == "postgres"
        store.create_user(ANA["email"], ANA["password"], ANA["customer_id"])
        client = login_client(app)
        assert client.get("/api/v1/supplies").status_code == 200
        AuthActions(client).logout()
        assert client.get("/api/v1/supplies").status_code == 401
        assert not (tmp_path / "accounts.sqlite").exists()
        assert {event["event"] for event in store.audit_events()} >= {"login.success", "logout"}
    finally:
        app.extensions["read_model"].close()
