"""Run every benchmark module (`python -m benchmarks [AREA ...]`), one after another, each in its own process so
that one benchmark's memory and threads do not colour the next one's figures."""

from __future__ import annotations

import pkgutil
import platform
import subprocess
import sys
import time
from pathlib import Path


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(module.name for module in pkgutil.iter_modules([str(here)]) if module.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    wanted = [f"bench_{name}" if not name.startswith("bench_") else name for name in argv]
    modules = [name for name in discover() if not wanted or name in wanted]
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}")
    failures = 0
    for name in modules:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", f"from benchmarks.{name} import main; main()"])
        print(f"--- {name}: {'ok' if result.returncode == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s")
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
