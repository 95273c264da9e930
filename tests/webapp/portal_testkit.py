"""Shared helpers for the portal tests: the snapshot factory, demo accounts, and CSRF-aware login actions."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

_factory_path = Path(__file__).resolve().parents[1] / "readmodel" / "snapshot_factory.py"
_spec = importlib.util.spec_from_file_location("readmodel_snapshot_factory", _factory_path)
snapshot_factory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(snapshot_factory)

ANA = {"email": "ana.perez@example.cl", "password": "clave-de-ana-2026", "customer_id": "C000001"}
BRUNO = {"email": "bruno.soto@example.cl", "password": "clave-de-bruno-2026", "customer_id": "C000002"}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_token_of(html: str) -> str:
    match = CSRF_META.search(html)
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


class AuthActions:
    def __init__(self, client):
        self.client = client

    def csrf_token(self, path: str = "/login") -> str:
        return csrf_token_of(self.client.get(path).get_data(as_text=True))

    def login(self, account=ANA, password: str | None = None, next_path: str | None = None):
        data = {
            "email": account["email"],
            "password": account["password"] if password is None else password,
            "csrf_token": self.csrf_token(),
        }
        if next_path is not None:
            data["next"] = next_path
        return self.client.post("/login", data=data)

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf_token("/")})
