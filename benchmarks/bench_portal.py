"""The portal under load: the 13-month daily consumption endpoint against `/healthz`, and the supply page's weight.

A warehouse with 100,000 supplies (13 months of daily totals each, ~40 million rows, plus a tariff schedule so
pesos are computed as in production) is generated directly with DuckDB and published by the publisher itself
(`warehouse.publish`, a first publish: the supply-sorted daily base plus month files). gunicorn serves it with the
production settings (`webapp/gunicorn.conf.py`: PORTAL_WORKERS workers x 4 threads). Client threads, each logged in
in turn as one of 64 customers with random supplies, ask for that customer's `granularity=day` series over 13
months, then for `/healthz`, for the same duration, in alternating rounds (so drift in the machine's speed weighs
on both alike). Printed: requests per second and p50/p99 latency of each, and the ratios (goals: throughput >= 0.5
x healthz, p99 <= 3 x healthz's p99). Then the bytes a first load of the supply page transfers: the HTML, every
stylesheet and script it links, and the explorer's first API call.

Settings (environment): BENCH_PORTAL_SUPPLIES (100000), BENCH_PORTAL_SECONDS (20 per endpoint),
BENCH_PORTAL_CLIENTS (8 threads), BENCH_PORTAL_ACCOUNTS (64 customers), BENCH_PORTAL_ROUNDS (4), PORTAL_WORKERS (2),
BENCH_PORTAL_RECENT_DAYS (0: a first publish; N: published again after the last N days changed, so the series also
reads the months changed since the daily base, as between two base rewrites in production).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
FIRST_DAY, LAST_DAY_EXCLUSIVE = "2025-08-10", "2026-09-10"
PASSWORD = "una frase larga para medir el portal"

def supply_id(index: int) -> str:
    return f"{30000000 + index:08d}"


def build_snapshot(data_dir: Path, supplies: int, recent_days: int = 0) -> tuple[float, float]:
    """A warehouse holding `supplies` supplies' daily totals (no intervals), published into `data_dir/readmodel`
    by the publisher itself (warehouse.publish); with `recent_days`, published again after those last days changed
    (the base is kept and their months are read from `daily_recent`). Returns (seconds to fill the warehouse,
    seconds to publish)."""
    from warehouse.db import connect
    from warehouse.publish import publish_read_model

    started = time.monotonic()
    con = connect(data_dir / "warehouse.duckdb")
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(
            """INSERT INTO customers SELECT printf('C%06d', i), printf('%08d', i), 'Cliente ' || i, NULL, NULL, now()
               FROM range(1, ? + 1) t(i)""",
            [supplies],
        )
        con.execute(
            """INSERT INTO supplies SELECT printf('%08d', 30000000 + i), uuid()::VARCHAR, uuid()::VARCHAR,
                   printf('C%06d', i), 'Calle ' || i, 'Santiago', 'BT1', 'connected', false, now()
               FROM range(1, ? + 1) t(i)""",
            [supplies],
        )
        con.execute(
            f"""INSERT INTO daily_consumption
                SELECT printf('%08d', 30000000 + i), 'delivered', d::DATE, 900, round(4 + 8 * random(), 3), 96, 96,
                       CASE WHEN q THEN 96 ELSE 0 END, 0, 0, CASE WHEN q THEN 'estimated' ELSE 'actual' END
                FROM (SELECT *, random() < 0.02 AS q
                      FROM range(1, ? + 1) s(i),
                           range(DATE '{FIRST_DAY}', DATE '{LAST_DAY_EXCLUSIVE}', INTERVAL 1 DAY) r(d))""",
            [supplies],
        )
        con.execute(
            """INSERT INTO tariffs VALUES (DATE '2025-07-01', DATE '2026-01-01', 'BT1', 1061, 173.0, 100.4),
                   (DATE '2026-01-01', DATE '2026-07-01', 'BT1', 1082, 178.2, 103.0),
                   (DATE '2026-07-01', NULL, 'BT1', 1104, 183.6, 105.5)"""
        )
        filled = time.monotonic() - started
        published = publish_read_model(con, data_dir / "readmodel").seconds
        if recent_days:
            # The steady state between base rewrites: the last days changed since the base (a day's new data, a
            # late correction), so the publish keeps the base and adds their months as `daily_recent`.
            con.execute(
                f"UPDATE daily_consumption SET kwh = kwh + 0.001 "
                f"WHERE local_date >= DATE '{LAST_DAY_EXCLUSIVE}' - INTERVAL {int(recent_days)} DAY")
            published += publish_read_model(con, data_dir / "readmodel").seconds
    finally:
        con.close()
    (data_dir / "warehouse.duckdb").unlink()
    return filled, published


def create_accounts(data_dir: Path, customers: list[int]) -> None:
    from webapp.accounts import AccountStore

    store = AccountStore(data_dir / "accounts.sqlite")
    store.initialize()
    password_hash = store.hasher.hash(PASSWORD)  # one Argon2 hash reused: creating accounts is not measured
    for index in customers:
        store.create_user(f"cliente{index}@example.cl", None, f"C{index:06d}", password_hash=password_hash)


def log_in(base_url: str, index: int) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30)
    token = CSRF_META.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": f"cliente{index}@example.cl", "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code in (302, 303), response.text[:300]
    return client


def load(threads: list[list[tuple[httpx.Client, str]]], path_of, seconds: float) -> tuple[float, list[float]]:
    """Each client thread requests `path_of(supply_id)` back to back for `seconds`, taking its logged-in customers
    in turn (each asks for their own supply); (req/s, latencies in ms)."""
    latencies: list[list[float]] = [[] for _ in threads]
    errors: list[str] = []
    stop_at = time.monotonic() + seconds

    def worker(slot: int, sessions: list[tuple[httpx.Client, str]]) -> None:
        turn = 0
        while time.monotonic() < stop_at:
            client, own_supply = sessions[turn % len(sessions)]
            turn += 1
            started = time.perf_counter()
            response = client.get(path_of(own_supply))
            latencies[slot].append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors.append(f"{response.status_code} {response.text[:200]}")
                return

    workers = [threading.Thread(target=worker, args=(slot, sessions)) for slot, sessions in enumerate(threads)]
    started = time.monotonic()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.monotonic() - started
    if errors:
        raise RuntimeError(f"requests failed: {errors[:3]}")
    merged = [value for values in latencies for value in values]
    return len(merged) / elapsed, merged


def server_cpu_seconds(master_pid: int) -> float:
    """CPU seconds (user + system) used so far by gunicorn's master and its workers, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    total = 0
    for pid in [master_pid, *map(int, children)]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def first_load_bytes(client: httpx.Client, supply: str) -> dict[str, int]:
    """Bytes of the supply page, the stylesheets and scripts it links, and the explorer's first API call."""
    html = client.get(f"/supplies/{supply}").text
    sizes = {"html": len(html.encode("utf-8"))}
    for url in re.findall(r'<(?:script|link)[^>]+(?:src|href)="(/static/[^"]+)"', html):
        sizes[url] = len(client.get(url).content)
    window = re.search(r'data-granularity="(\w+)" data-from="([\d-]+)" data-to="([\d-]+)"', html)
    if window:
        granularity, first, last = window.groups()
        api = client.get(f"/api/v1/supplies/{supply}/consumption",
                         params={"granularity": granularity, "from": first, "to": last, "flow": "delivered"})
        sizes["first API call"] = len(api.content)
    return sizes


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import start_portal

    supplies = int(os.environ.get("BENCH_PORTAL_SUPPLIES", "100000"))
    seconds = float(os.environ.get("BENCH_PORTAL_SECONDS", "20"))
    client_count = int(os.environ.get("BENCH_PORTAL_CLIENTS", "8"))
    rounds = max(1, int(os.environ.get("BENCH_PORTAL_ROUNDS", "4")))
    account_count = min(int(os.environ.get("BENCH_PORTAL_ACCOUNTS", "64")), supplies)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    try:
        recent_days = int(os.environ.get("BENCH_PORTAL_RECENT_DAYS", "0"))
        filled, published = build_snapshot(data_dir, supplies, recent_days)
        size_mb = sum(path.stat().st_size for path in (data_dir / "readmodel").rglob("*") if path.is_file()) / 1e6
        print(f"read model: {supplies:,} supplies x 396 days; warehouse filled in {filled:.0f} s, published by "
              f"warehouse.publish in {published:.0f} s ({size_mb:.0f} MB)"
              + (f"; published again after the last {recent_days} days changed (their months read from "
                 "daily_recent)" if recent_days else "; a first publish (no daily_recent)"))
        rng = random.Random(42)
        customers = rng.sample(range(1, supplies + 1), account_count)
        create_accounts(data_dir, customers)
        workers = os.environ.get("PORTAL_WORKERS", "2")
        service, base_url = start_portal(data_dir, data_dir / "logs", workers=int(workers))
        try:
            # every customer logged in once; client thread k takes customers k, k + threads, ... in turn
            clients = [(log_in(base_url, index), supply_id(index)) for index in customers]
            threads = [clients[slot::client_count] for slot in range(client_count)]
            path = (f"/api/v1/supplies/{{}}/consumption?granularity=day&from={FIRST_DAY}"
                    f"&to={LAST_DAY_EXCLUSIVE}&flow=delivered")
            for client, own in clients:  # warm each worker's connection and page cache once
                assert client.get(path.format(own)).status_code == 200
            # Alternate short rounds of each endpoint so that drift in the machine's speed (a noisy neighbour,
            # the page cache) weighs on both sides of the ratio alike. The CPU each side used is printed too:
            # client and server share the machine's cores.
            endpoints = {"/healthz": lambda own: "/healthz", "13-month daily consumption": path.format}
            totals = {name: {"ms": [], "seconds": 0.0, "server": 0.0, "client": 0.0} for name in endpoints}
            pid = service.process.pid
            for _ in range(rounds):
                for name, path_of in reversed(endpoints.items()):
                    server_before, client_before = server_cpu_seconds(pid), time.process_time()
                    rate, latencies = load(threads, path_of, seconds / rounds)
                    tally = totals[name]
                    tally["server"] += server_cpu_seconds(pid) - server_before
                    tally["client"] += time.process_time() - client_before
                    tally["ms"] += latencies
                    tally["seconds"] += len(latencies) / rate
            threads_per_worker = os.environ.get("PORTAL_THREADS", "4")
            print(f"gunicorn: {workers} workers x {threads_per_worker} threads; {client_count} client threads, "
                  f"{seconds:.0f} s each in {rounds} alternating rounds")
            for name, tally in totals.items():
                latencies, requests = tally["ms"], len(tally["ms"])
                print(f"{name:28s} {requests / tally['seconds']:8.1f} req/s   p50 {percentile(latencies, 0.5):7.1f} ms"
                      f"   p99 {percentile(latencies, 0.99):7.1f} ms   ({requests} requests)")
            for name, tally in totals.items():
                requests = len(tally["ms"])
                print(f"{name:28s} CPU per request: server {tally['server'] / requests * 1000:5.2f} ms, "
                      f"client {tally['client'] / requests * 1000:5.2f} ms")
            health, api = totals["/healthz"], totals["13-month daily consumption"]
            api_ms, health_ms = api["ms"], health["ms"]
            api_rate, health_rate = len(api_ms) / api["seconds"], len(health_ms) / health["seconds"]
            ratio = api_rate / health_rate
            p99_ratio = percentile(api_ms, 0.99) / percentile(health_ms, 0.99)
            print(f"throughput ratio consumption / healthz: {ratio:.2f} (goal >= 0.5)")
            print(f"p99 ratio consumption / healthz:        {p99_ratio:.2f} (goal <= 3)")
            sizes = first_load_bytes(clients[0][0], clients[0][1])
            total = sum(sizes.values())
            for name, size in sizes.items():
                print(f"  {name:40s} {size / 1024:8.1f} KB")
            print(f"supply page first load: {total / 1024:.1f} KB uncompressed (goal < 300 KB)")
            print(f"median consumption latency: {statistics.median(api_ms):.1f} ms")
            for client, _ in clients:
                client.close()
        finally:
            service.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
