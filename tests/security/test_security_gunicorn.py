"""Throttling and session invalidation hold across gunicorn workers: the state lives in the accounts store, not
in a worker's memory. The access log names the worker pid of each request, so the test proves both workers took
part."""

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from security_testkit import ANA, BRUNO, snapshot_factory
from tests.conftest import CSRF_META, login, start_portal
from webapp.accounts import AccountStore

pytestmark = pytest.mark.e2e


def attempt(url: str, password: str) -> int:
    with httpx.Client(base_url=url, timeout=30) as client:
        token = CSRF_META.search(client.get("/login").text).group(1)
        response = client.post("/login", data={"email": ANA["email"], "password": password, "csrf_token": token})
        return response.status_code


def pids_by_request(log_path) -> list[tuple[str, str, str]]:
    """(pid, request line, status) from the access log lines written with the `%(p)s|%(r)s|%(s)s` format."""
    return re.findall(r"^<(\d+)>\|([A-Z]+ [^|]+)\|(\d{3})$", log_path.read_text(errors="replace"), re.M)


@pytest.fixture
def portal(tmp_path, monkeypatch):
    data_dir = tmp_path / "var"
    snapshot_factory.write_demo_snapshot(data_dir / "readmodel")
    store = AccountStore(data_dir / "accounts.sqlite")
    store.initialize()
    for account in (ANA, BRUNO):
        store.create_user(account["email"], account["password"], account["customer_id"])
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--access-logformat '%(p)s|%(r)s|%(s)s'")
    service, url = start_portal(data_dir, tmp_path / "logs", workers=2)
    yield service, url
    service.stop()


def test_login_throttling_and_logout_hold_across_two_workers(portal):
    service, url = portal
    with ThreadPoolExecutor(max_workers=5) as pool:
        failures = list(pool.map(lambda _: attempt(url, "no-es-la-clave-1"), range(5)))
    assert failures == [200] * 5

    statuses = []
    for _ in range(6):
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses += list(pool.map(lambda _: attempt(url, ANA["password"]), range(4)))
        served = {pid for pid, request, status in pids_by_request(service.log_path)
                  if request.startswith("POST /login") and status == "429"}
        if len(served) >= 2:
            break
    # the right password is refused by every worker while the account is blocked
    assert set(statuses) == {429}
    assert len(served) == 2, "both workers must have answered"

    # logout in one worker ends the session for all of them (Ana is blocked: Bruno logs in)
    client = login(url, BRUNO["email"], BRUNO["password"])
    cookie = client.cookies.get("session")
    copies = []
    for _ in range(6):
        copy = httpx.Client(base_url=url, timeout=30, cookies={"session": cookie})
        assert copy.get("/api/v1/supplies").status_code == 200
        copies.append(copy)
    token = CSRF_META.search(client.get("/").text).group(1)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    for copy in copies:  # open connections, possibly held by either worker
        assert copy.get("/api/v1/supplies").status_code == 401
        copy.close()
    answered = {pid for pid, request, status in pids_by_request(service.log_path)
                if request.startswith("GET /api/v1/supplies") and status == "401"}
    assert answered, "the copied cookie was refused"

