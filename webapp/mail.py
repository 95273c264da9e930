"""Outgoing e-mail: `.eml` files in the outbox folder by default, SMTP when `MAIL_SMTP_HOST` is configured.

The outbox (`AMI_DATA_DIR/outbox/`) is what a developer or a test reads to follow a verification or reset link.
Each message is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import secrets
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from flask import current_app


def outbox_dir() -> Path:
    return Path(current_app.config.get("MAIL_OUTBOX_DIR") or Path(current_app.config["AMI_DATA_DIR"]) / "outbox")


def build_message(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = current_app.config.get("MAIL_FROM") or "Portal de clientes <no-responder@portal.invalid>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="portal.invalid")
    message.set_content(body, charset="utf-8")
    return message


def send(to: str, subject: str, body: str) -> None:
    """Deliver one plain-text message (Spanish) to `to`."""
    message = build_message(to, subject, body)
    host = current_app.config.get("MAIL_SMTP_HOST")
    if host:
        _send_smtp(message, host)
        return
    folder = outbox_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{stamp}-{secrets.token_hex(4)}.eml"
    pending = folder / f".{name}.tmp"
    descriptor = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(bytes(message))
    os.replace(pending, folder / name)
    current_app.logger.info("mail written to outbox %s", folder / name)


def _send_smtp(message: EmailMessage, host: str) -> None:
    config = current_app.config
    port = int(config.get("MAIL_SMTP_PORT") or 587)
    with smtplib.SMTP(host, port, timeout=20) as smtp:
        if config.get("MAIL_SMTP_STARTTLS", True):
            smtp.starttls(context=ssl.create_default_context())
        if config.get("MAIL_SMTP_USER"):
            smtp.login(config["MAIL_SMTP_USER"], config.get("MAIL_SMTP_PASSWORD") or "")
        smtp.send_message(message)
    current_app.logger.info("mail sent through %s:%s", host, port)
