"""Passthrough resilience, measured on the real processes (simulator + gunicorn portal, 2 workers x 4 threads).

1. Read-model isolation: p95 of consumption JSON requests while other clients keep asking for the live balance,
   first with billing healthy, then with billing hanging (fault `hang`), in the same run; the ratio
   hanging / healthy is the figure (target <= 1.5). The breaker is switched off for this part
   (PASSTHROUGH_BREAKER_FAILURES huge) so every balance call really waits for its deadline: the bulkhead alone
   must keep the worker threads free.
2. Deadline: duration of balance calls while billing hangs (target: within the 3 s deadline, plus HTTP overhead).
3. Breaker: duration of balance calls once each worker's breaker is open (target <= 10 ms), against the
   healthy balance call as baseline.

`python -m benchmarks passthrough`; PASSTHROUGH_BENCH_SECONDS (default 12) sets each load phase's length."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import login, start_portal, start_simulator  # noqa: E402

_spec = importlib.util.spec_from_file_location("live_testkit", ROOT / "tests" / "passthrough" / "live_testkit.py")
live_testkit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(live_testkit)

PHASE_SECONDS = float(os.environ.get("PASSTHROUGH_BENCH_SECONDS", "12"))
CONSUMPTION_CLIENTS = 2
BALANCE_CLIENTS = 6


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def load_phase(url: str, email: str, supply_id: str, day: str, next_day: str) -> tuple[list[float], list[float]]:
    """Consumption and balance latencies under concurrent load for PHASE_SECONDS."""
    stop = time.monotonic() + PHASE_SECONDS
    consumption, balance = [], []
    lock = threading.Lock()

    def consumption_client():
        client = login(url, email, live_testkit.PASSWORD)
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = client.get(f"/api/v1/supplies/{supply_id}/consumption",
                                  params={"granularity": "15min", "from": day, "to": next_day})
            elapsed = time.perf_counter() - started
            assert response.status_code == 200 and response.json()["points"], response.text[:200]
            with lock:
                consumption.append(elapsed)
        client.close()

    def balance_client():
        client = login(url, email, live_testkit.PASSWORD)
        client.timeout = 30
        while time.monotonic() < stop:
            started = time.perf_counter()
            client.get(f"/api/v1/supplies/{supply_id}/balance")
            with lock:
                balance.append(time.perf_counter() - started)
        client.close()

    threads = [threading.Thread(target=consumption_client) for _ in range(CONSUMPTION_CLIENTS)]
    threads += [threading.Thread(target=balance_client) for _ in range(BALANCE_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return consumption, balance


def with_portal(work, data_dir: Path, log_dir: Path, simulator_url: str, **env):
    saved = dict(os.environ)
    os.environ.update({"AMI_BACKEND_URL": simulator_url, **{key: str(value) for key, value in env.items()}})
    try:
        service, url = start_portal(data_dir, log_dir, workers=2)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        result = work(url)
    finally:
        service.stop()
    return result, service.log_path.read_text(errors="replace")


def logged_durations(log_text: str, outcome: str) -> list[float]:
    """duration_ms of the portal's own call log lines with this outcome (the gateway's view, no HTTP around it)."""
    pattern = re.compile(rf"passthrough call backend=billing .* duration_ms=([0-9.]+) outcome={outcome}\b")
    return [float(match.group(1)) / 1000 for match in pattern.finditer(log_text)]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-passthrough-") as scratch:
        scratch = Path(scratch)
        simulator, simulator_url = start_simulator(scratch / "logs", seed=11, supplies=6, months=3,
                                                   now=live_testkit.simulator_now())
        try:
            world = live_testkit.build_data_dir(scratch / "var", simulator_url, history_days=7)
            supply_id, email = world["supply"]["supply_id"], world["email"]
            last_day = world["data_until"].astimezone(live_testkit.snapshot_factory.SANTIAGO).date()
            day, next_day = (last_day - dt.timedelta(days=2)).isoformat(), (last_day - dt.timedelta(days=1)).isoformat()
            live_testkit.clear_faults(simulator_url)

            def isolation(url):
                healthy = load_phase(url, email, supply_id, day, next_day)
                live_testkit.set_fault(simulator_url, "billing", "hang")
                hanging = load_phase(url, email, supply_id, day, next_day)
                live_testkit.clear_faults(simulator_url)
                return healthy, hanging

            ((healthy_c, healthy_b), (hanging_c, hanging_b)), log_a = with_portal(
                isolation, scratch / "var", scratch / "logs-a", simulator_url, PASSTHROUGH_BREAKER_FAILURES=10**9)

            def breaker(url):
                client = login(url, email, live_testkit.PASSWORD)
                client.timeout = 30
                path = f"/api/v1/supplies/{supply_id}/balance"
                healthy = []
                for _ in range(50):
                    started = time.perf_counter()
                    assert client.get(path).json()["stale"] is False
                    healthy.append(time.perf_counter() - started)
                live_testkit.set_fault(simulator_url, "billing", "hang")
                opening = []
                # 2 workers x 5 consecutive failures open both breakers; keep calling until calls are fast
                for _ in range(40):
                    started = time.perf_counter()
                    assert client.get(path).json()["stale"] is True
                    opening.append(time.perf_counter() - started)
                    if len(opening) >= 12 and max(opening[-4:]) < 0.5:
                        break
                open_calls = []
                for _ in range(200):
                    started = time.perf_counter()
                    body = client.get(path).json()
                    open_calls.append(time.perf_counter() - started)
                    assert body["stale"] is True
                live_testkit.clear_faults(simulator_url)
                client.close()
                return healthy, opening, open_calls

            (healthy_balance, opening, open_calls), log_b = with_portal(breaker, scratch / "var", scratch / "logs-b",
                                                               simulator_url)
        finally:
            simulator.stop()

    healthy_p95, hanging_p95 = percentile(healthy_c, 0.95), percentile(hanging_c, 0.95)
    print(f"load average at the end (2 cores shared): {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    print(f"1. consumption JSON (15-minute day) while {BALANCE_CLIENTS} clients ask for the live balance "
          f"({PHASE_SECONDS:.0f} s per phase, {CONSUMPTION_CLIENTS} consumption clients):")
    print(f"   billing healthy: {len(healthy_c):5d} requests  p50 {ms(statistics.median(healthy_c))}  "
          f"p95 {ms(healthy_p95)}")
    print(f"   billing hanging: {len(hanging_c):5d} requests  p50 {ms(statistics.median(hanging_c))}  "
          f"p95 {ms(hanging_p95)}")
    print(f"   p95 ratio hanging / healthy: {hanging_p95 / healthy_p95:.2f}  (target <= 1.5)")
    slow = [value for value in hanging_b if value > 0.5]
    fast = [value for value in hanging_b if value <= 0.5]
    print("2. balance calls while billing hangs (deadline 3 s, breaker off):")
    print(f"   {len(hanging_b)} calls: {len(slow)} waited for the deadline (max {ms(max(slow) if slow else 0)}), "
          f"{len(fast)} refused at once by the bulkhead (p95 {ms(percentile(fast, 0.95) if fast else 0)})")
    timeouts = logged_durations(log_a, "timeout")
    if timeouts:
        print(f"   gateway's own log: {len(timeouts)} timed-out calls, max {ms(max(timeouts))} "
              "(the rest of an HTTP request's time is queueing for a worker thread)")
    print(f"   healthy balance calls under the same load: p50 {ms(statistics.median(healthy_b))}  "
          f"p95 {ms(percentile(healthy_b, 0.95))}")
    print("3. balance calls, one client, default breaker (5 failures, 30 s):")
    print(f"   billing healthy:         p50 {ms(statistics.median(healthy_balance))}  "
          f"p95 {ms(percentile(healthy_balance, 0.95))}")
    print(f"   billing hanging, breaker still closed: {len(opening)} calls, slowest {ms(max(opening))} "
          "(deadline 3 s; whole HTTP request)")
    print(f"   breaker open ({len(open_calls)} calls): p50 {ms(statistics.median(open_calls))}  "
          f"p95 {ms(percentile(open_calls, 0.95))}  max {ms(max(open_calls))}  (target <= 10 ms; whole HTTP "
          "request: session, ownership check, last known balance)")
    refused = logged_durations(log_b, "breaker_open")
    if refused:
        print(f"   gateway's own log: {len(refused)} calls refused by the open breaker, max {ms(max(refused))}")


if __name__ == "__main__":
    main()
