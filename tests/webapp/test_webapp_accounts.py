"""The accounts store: Argon2id hashes, authentication, and idempotent demo accounts."""

import csv

import pytest

from portal_testkit import snapshot_factory
from readmodel import ReadModel
from webapp.accounts import AccountStore, DuplicateEmail


@pytest.fixture
def store(tmp_path):
    store = AccountStore(tmp_path / "accounts.sqlite")
    store.initialize()
    return store


def test_passwords_are_stored_as_argon2id_and_verified(store):
    user = store.create_user("Cliente@Example.CL", "una-clave-bien-larga", "C000009")
    assert user.email == "cliente@example.cl"
    import sqlite3

    with sqlite3.connect(store.path) as connection:
        (password_hash,) = connection.execute("SELECT password_hash FROM users").fetchone()
        (journal_mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    assert password_hash.startswith("$argon2id$")
    assert journal_mode == "wal"
    assert store.authenticate("cliente@example.cl", "una-clave-bien-larga") == user
    assert store.authenticate("cliente@example.cl", "otra-clave-bien-larga") is None
    assert store.authenticate("otro@example.cl", "una-clave-bien-larga") is None
    with pytest.raises(DuplicateEmail):
        store.create_user("CLIENTE@example.cl", "una-clave-bien-larga", "C000010")


def test_ensure_demo_accounts_creates_logins_and_is_idempotent(store, tmp_path):
    readmodel_dir = tmp_path / "readmodel"
    snapshot_factory.write_demo_snapshot(readmodel_dir)
    read_model = ReadModel(readmodel_dir)
    csv_path = tmp_path / "demo-accounts.csv"

    rows = store.ensure_demo_accounts(read_model, csv_path)
    assert [row["email"] for row in rows] == ["ana.perez@example.cl", "bruno.soto@example.cl"]
    assert rows[0]["supply_ids"] == "30000001;30000002"
    assert all(len(row["password"]) >= 16 for row in rows)
    with csv_path.open(newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == rows
    assert csv_path.read_text(encoding="utf-8").splitlines()[0] == "email,password,supply_ids"
    assert store.authenticate(rows[1]["email"], rows[1]["password"]).customer_id == "C000002"

    written_at = csv_path.stat().st_mtime_ns
    assert store.ensure_demo_accounts(read_model, csv_path) == rows
    assert csv_path.stat().st_mtime_ns == written_at

    # a lost accounts file is rebuilt with the same logins the CSV promises
    fresh_store = AccountStore(tmp_path / "other.sqlite")
    fresh_store.initialize()
    assert fresh_store.ensure_demo_accounts(read_model, csv_path) == rows
    assert fresh_store.authenticate(rows[0]["email"], rows[0]["password"]) is not None
    read_model.close()


def test_session_user_is_the_user_only_while_their_session_is_live(tmp_path):
    now = [1_000_000]
    store = AccountStore(tmp_path / "accounts.sqlite", clock=lambda: now[0])
    store.initialize()
    user = store.create_user("s@example.cl", "una clave bien larga", "C000001")
    other = store.create_user("t@example.cl", "otra clave bien larga", "C000002")
    token = store.start_session(user.id, "agent", "127.0.0.1")
    assert store.session_user(token, str(user.id), 900, 28800) == user
    assert store.session_user(token, other.id, 900, 28800) is None  # someone else's session
    assert store.session_user("", user.id, 900, 28800) is None
    assert store.session_user(token, "not-a-number", 900, 28800) is None
    now[0] += 901  # idle too long: ended on the server, for good
    assert store.session_user(token, user.id, 900, 28800) is None
    now[0] -= 901
    assert store.session_user(token, user.id, 900, 28800) is None
    fresh = store.start_session(user.id, "agent", "127.0.0.1")
    store.end_session(fresh)
    assert store.session_user(fresh, user.id, 900, 28800) is None
