"""Shared fixtures: free ports, real processes (the simulator, gunicorn) and a logged-in HTTP client."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


class Service:
    """A real child process with its log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_simulator(log_dir: Path, *, seed: int, supplies: int, months: int, now: str) -> tuple[Service, str]:
    port = free_port()
    service = Service(
        "simulator",
        [sys.executable, "-m", "ami_portal.cli", "simulator", "--port", str(port), "--seed", str(seed),
         "--supplies", str(supplies), "--months", str(months), "--now", now],
        dict(os.environ),
        log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", service.process)
    return service, url


def start_portal(data_dir: Path, log_dir: Path, workers: int = 2) -> tuple[Service, str]:
    port = free_port()
    env = dict(os.environ, AMI_DATA_DIR=str(data_dir), PORTAL_PORT=str(port), PORTAL_WORKERS=str(workers))
    service = Service(
        "portal",
        [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "webapp" / "gunicorn.conf.py"), "webapp.wsgi:app"],
        env,
        log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", service.process, timeout=60)
    return service, url


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def login(base_url: str, email: str, password: str) -> httpx.Client:
    """An HTTP client logged in through the real form (CSRF token read from the page)."""
    client = httpx.Client(base_url=base_url, timeout=30)
    page = client.get("/login")
    token = CSRF_META.search(page.text).group(1)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code in (302, 303), response.text[:500]
    return client


def seed_data_dir(data_dir: Path, write_snapshot, accounts) -> Path:
    """A data directory with a published snapshot (written by `write_snapshot(readmodel_dir)`) and the given
    accounts (dicts with email, password, customer_id); built once per session by callers, since Argon2 is slow."""
    from webapp.accounts import AccountStore

    write_snapshot(data_dir / "readmodel")
    store = AccountStore(data_dir / "accounts.sqlite")
    store.initialize()
    for account in accounts:
        store.create_user(account["email"], account["password"], account["customer_id"])
    return data_dir
