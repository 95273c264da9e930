"""The portal's own write side: customer accounts in SQLite (WAL, safe across gunicorn workers).

Passwords are Argon2id hashes (argon2-cffi defaults, which follow the OWASP recommendation). Each operation
opens its own short-lived connection, so nothing is shared between threads or forked workers.
"""

from __future__ import annotations

import csv
import logging
import os
import secrets
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_login_at TEXT
);
CREATE INDEX IF NOT EXISTS users_customer_id ON users(customer_id);
"""
DEMO_CSV_HEADER = ["email", "password", "supply_ids"]


class DuplicateEmail(ValueError):
    """An account with this e-mail already exists."""


@dataclass(frozen=True)
class User:
    """A logged-in customer, as flask-login sees it."""

    id: int
    email: str
    customer_id: str
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return str(self.id)


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AccountStore:
    """Users and their password hashes in one SQLite file."""

    def __init__(self, path: Path, password_hasher: PasswordHasher | None = None):
        self.path = Path(path)
        self.hasher = password_hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    @contextmanager
    def _connect(self):
        connection = sqlite3.connect(self.path, timeout=10)
        try:
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute("PRAGMA foreign_keys = ON")
            with connection:
                yield connection
        finally:
            connection.close()

    def initialize(self) -> None:
        """Create the file and schema if needed (idempotent, safe to run from several workers)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as connection:
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(SCHEMA)
            connection.commit()

    def healthy(self) -> bool:
        try:
            with self._connect() as connection:
                connection.execute("SELECT count(*) FROM users").fetchone()
        except sqlite3.Error:
            return False
        return True

    @staticmethod
    def _user(row) -> User | None:
        return None if row is None else User(id=row[0], email=row[1], customer_id=row[2])

    def get_user(self, user_id: int | str) -> User | None:
        try:
            user_id = int(user_id)
        except (TypeError, ValueError):
            return None
        with self._connect() as connection:
            row = connection.execute(
                "SELECT id, email, customer_id FROM users WHERE id = ?", [user_id]
            ).fetchone()
        return self._user(row)

    def find_by_email(self, email: str) -> User | None:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT id, email, customer_id FROM users WHERE email = ?", [normalise_email(email)]
            ).fetchone()
        return self._user(row)

    def create_user(self, email: str, password: str, customer_id: str) -> User:
        email = normalise_email(email)
        if "@" not in email:
            raise ValueError(f"not an e-mail address: {email!r}")
        if len(password) < 12:
            raise ValueError("password must have at least 12 characters")
        password_hash = self.hasher.hash(password)
        try:
            with self._connect() as connection:
                cursor = connection.execute(
                    "INSERT INTO users (email, password_hash, customer_id, created_at) VALUES (?, ?, ?, ?)",
                    [email, password_hash, customer_id, _now()],
                )
        except sqlite3.IntegrityError as error:
            raise DuplicateEmail(email) from error
        return User(id=cursor.lastrowid, email=email, customer_id=customer_id)

    def _verify_against_dummy(self, password: str) -> None:
        """Spend the same hashing time for unknown e-mails, so timing does not reveal which accounts exist."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        try:
            self.hasher.verify(self._dummy_hash, password)
        except VerificationError:
            pass

    def authenticate(self, email: str, password: str) -> User | None:
        """The user when the e-mail and password match, else None. Records the login time."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT id, email, customer_id, password_hash FROM users WHERE email = ?",
                [normalise_email(email)],
            ).fetchone()
        if row is None:
            self._verify_against_dummy(password or "")
            return None
        user_id, stored_email, customer_id, password_hash = row
        try:
            self.hasher.verify(password_hash, password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        updates = {"last_login_at": _now()}
        if self.hasher.check_needs_rehash(password_hash):
            updates["password_hash"] = self.hasher.hash(password)
        with self._connect() as connection:
            for column, value in updates.items():
                # column names come from the fixed dict above, never from input
                connection.execute(f"UPDATE users SET {column} = ? WHERE id = ?", [value, user_id])
        return User(id=user_id, email=stored_email, customer_id=customer_id)

    # -- demo accounts ------------------------------------------------------------------------------------------

    def ensure_demo_accounts(self, read_model, csv_path: Path) -> list[dict]:
        """One account per customer in the read model, with its logins written to `csv_path`.

        Idempotent: accounts listed in an existing CSV keep their passwords (and are recreated with them if the
        accounts file was lost); only customers without an account get a new random password. The CSV is
        rewritten only when its content changes. Returns the CSV rows (`email`, `password`, `supply_ids`).
        """
        csv_path = Path(csv_path)
        existing_rows = _read_demo_csv(csv_path)
        rows_by_email = {row["email"]: row for row in existing_rows}
        rows = []
        for customer in read_model.customers():
            email = normalise_email(customer.get("email") or "") or f"{customer['customer_id'].lower()}@demo.invalid"
            supply_ids = ";".join(
                supply["supply_id"] for supply in read_model.supplies_for_customer(customer["customer_id"])
            )
            listed = rows_by_email.pop(email, None)
            account = self.find_by_email(email)
            if account is not None and account.customer_id != customer["customer_id"]:
                log.warning("demo account %s belongs to another customer; skipping %s", email,
                            customer["customer_id"])
                continue
            if account is not None and listed is None:
                log.warning("account %s exists but is not in %s; its password is unknown, skipping", email,
                            csv_path)
                continue
            password = listed["password"] if listed else secrets.token_urlsafe(15)
            if account is None:
                self.create_user(email, password, customer["customer_id"])
            rows.append({"email": email, "password": password, "supply_ids": supply_ids})
        # logins listed before whose customer left the read model stay listed while the account exists
        for leftover in rows_by_email.values():
            if self.find_by_email(leftover["email"]) is not None:
                rows.append(leftover)
        if rows != existing_rows:
            _write_demo_csv(csv_path, rows)
        return rows


def _read_demo_csv(csv_path: Path) -> list[dict]:
    if not csv_path.exists():
        return []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        return [
            {"email": row["email"], "password": row["password"], "supply_ids": row["supply_ids"]}
            for row in csv.DictReader(handle)
        ]


def _write_demo_csv(csv_path: Path, rows: list[dict]) -> None:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    pending = csv_path.with_name(csv_path.name + ".tmp")
    descriptor = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=DEMO_CSV_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(pending, csv_path)
