"""What the security layer costs per request, in process (Flask test client), as ratios to `/healthz`.

Figures: median time of `/healthz` (no store I/O, the baseline), of an authenticated `GET /api/v1/supplies` (a
server-side session check in the accounts store plus the read model), of a bearer-grant `GET /api/v1/supplies`
(grant lookup plus filtering), and of one `POST /login` (Argon2id verification dominates), and the same session
check against a SQLite store under concurrent threads.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def median_ms(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "readmodel"))
    import snapshot_factory

    from webapp import create_app
    from webapp.accounts import AccountStore

    data_dir = Path(tempfile.mkdtemp(prefix="bench-security-"))
    snapshot_factory.write_demo_snapshot(data_dir / "readmodel")
    store = AccountStore(data_dir / "accounts.sqlite")
    store.initialize()
    email, password = "bench@example.cl", "una frase para medir tiempos"
    user = store.create_user(email, password, "C000001")
    _, grant_token = store.create_grant(user, "Bench", ["30000001"], ["consumption"], "2026-01-01", "2026-06-01",
                                        store.now() + 3600)
    app = create_app({"TESTING": True, "AMI_DATA_DIR": data_dir, "SECRET_KEY": "bench"})
    client = app.test_client()
    token = CSRF_META.search(client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"email": email, "password": password, "csrf_token": token}).status_code == 302
    third_party = app.test_client()

    def login_once():
        anonymous = app.test_client()
        csrf = CSRF_META.search(anonymous.get("/login").get_data(as_text=True)).group(1)
        anonymous.post("/login", data={"email": email, "password": password, "csrf_token": csrf})

    baseline = median_ms(lambda: client.get("/healthz"), 300)
    session_call = median_ms(lambda: client.get("/api/v1/supplies"), 300)
    grant_call = median_ms(lambda: third_party.get("/api/v1/supplies",
                                                   headers={"Authorization": f"Bearer {grant_token}"}), 300)
    login_call = median_ms(login_once, 15)
    print(f"/healthz (baseline):                 {baseline:8.2f} ms")
    print(f"GET /api/v1/supplies with session:   {session_call:8.2f} ms  ({session_call / baseline:6.1f}x baseline)")
    print(f"GET /api/v1/supplies with a grant:   {grant_call:8.2f} ms  ({grant_call / baseline:6.1f}x baseline)")
    print(f"POST /login (Argon2id verify):       {login_call:8.2f} ms  ({login_call / baseline:6.1f}x baseline)")

    session_token = store.start_session(user.id)
    single = median_ms(lambda: store.check_session(session_token, user.id, 900, 28800), 500)
    with ThreadPoolExecutor(max_workers=8) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: store.check_session(session_token, user.id, 900, 28800), range(2000)))
        per_check = (time.perf_counter() - started) * 1000 / 2000
    print(f"session check, one thread:           {single:8.3f} ms")
    print(f"session check, 8 threads (per call): {per_check:8.3f} ms  ({per_check / single:6.2f}x one thread)")
    app.extensions["read_model"].close()


if __name__ == "__main__":
    main()
