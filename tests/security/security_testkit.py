"""Helpers for the security tests: log in, post forms with their CSRF token, read the mail outbox, move clocks."""

from __future__ import annotations

import email
import email.policy
import importlib.util
import re
import sys
from pathlib import Path

_testkit_path = Path(__file__).resolve().parents[1] / "webapp" / "portal_testkit.py"
if "portal_testkit" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("portal_testkit", _testkit_path)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["portal_testkit"] = _module
    _spec.loader.exec_module(_module)

from portal_testkit import ANA, BRUNO, AuthActions, csrf_token_of, snapshot_factory  # noqa: E402,F401

LINK = re.compile(r"(/(?:register/verify|password/reset)/[A-Za-z0-9_\-]+)")


def login_client(app, account=ANA, password=None):
    client = app.test_client()
    response = AuthActions(client).login(account, password)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def post_form(client, path, data, page=None):
    """POST a form with the CSRF token read from `page` (default: the same path)."""
    token = csrf_token_of(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token})


def outbox(data_dir) -> list[email.message.EmailMessage]:
    folder = Path(data_dir) / "outbox"
    if not folder.exists():
        return []
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(folder.glob("*.eml"))]


def last_link(data_dir) -> str:
    messages = outbox(data_dir)
    assert messages, "no mail in the outbox"
    match = LINK.search(messages[-1].get_content())
    assert match, messages[-1].get_content()
    return match.group(1)


def advance_clock(app, seconds: float) -> None:
    """Move the accounts store's clock forward (sessions, tokens, throttling all read it)."""
    store = app.extensions["accounts"]
    previous = store.clock
    store.clock = lambda: previous() + seconds


def form_fields(html: str, action: str | None = None) -> set[str]:
    """Names of the inputs of the form posting to `action` (the first form without one when None)."""
    for match in re.finditer(r"<form\b([^>]*)>(.*?)</form>", html, re.S):
        attributes, body = match.groups()
        target = re.search(r'action="([^"]*)"', attributes)
        if (action is None and target is None) or (target and target.group(1) == action):
            return set(re.findall(r'<(?:input|select|textarea)[^>]* name="([^"]+)"', body))
    raise AssertionError(f"no form posting to {action}")


def comparable(html: str, *variable: str) -> str:
    """A page with its CSRF tokens (signed with a timestamp) and the given request-specific strings blanked."""
    html = re.sub(r'(name="csrf-token" content=|name="csrf_token" value=)"[^"]*"', r'\1""', html)
    for text in variable:
        html = html.replace(text, "<VAR>")
    return html
