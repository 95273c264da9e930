"""Atomic drop of a CIM file into the pipelines' inbox: written under a hidden temporary name in the same
directory, flushed to disk, then renamed to `*.xml` with `os.replace`, so the inbox sensor never sees half a
file."""

from __future__ import annotations

import os
import re
from pathlib import Path

SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+\.xml$")


def write_inbox_file(data_dir: Path, name: str, content: bytes) -> Path:
    if not SAFE_NAME.match(name) or name.startswith("."):
        raise ValueError(f"not a safe inbox file name: {name!r}")
    inbox = Path(data_dir) / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / name
    pending = inbox / f".{name}.{os.getpid()}.tmp"
    with open(pending, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(pending, target)
    return target
