"""Settings of the command line and `make run`, from environment variables (documented in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    demo_supplies: int
    demo_months: int
    seed: int
    portal_port: int
    dagster_port: int
    simulator_port: int
    portal_workers: int

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"

    @property
    def backend_url(self) -> str:
        return os.environ.get("AMI_BACKEND_URL", f"http://127.0.0.1:{self.simulator_port}")

    @property
    def readmodel_dir(self) -> Path:
        return self.data_dir / "readmodel"

    @property
    def demo_accounts_csv(self) -> Path:
        return self.data_dir / "demo-accounts.csv"

    def child_env(self) -> dict[str, str]:
        """Environment for every process we start, so they agree on locations and ports."""
        env = dict(os.environ)
        env.update(
            {
                "AMI_DATA_DIR": str(self.data_dir),
                "DAGSTER_HOME": str(self.dagster_home),
                "AMI_BACKEND_URL": self.backend_url,
                "SIMULATOR_PORT": str(self.simulator_port),
                "PORTAL_PORT": str(self.portal_port),
                "PORTAL_WORKERS": str(self.portal_workers),
            }
        )
        return env


def load() -> Settings:
    return Settings(
        data_dir=Path(os.environ.get("AMI_DATA_DIR", "var")).resolve(),
        demo_supplies=_int("DEMO_SUPPLIES", 50),
        demo_months=_int("DEMO_MONTHS", 13),
        seed=_int("SIMULATOR_SEED", 42),
        portal_port=_int("PORTAL_PORT", 8000),
        dagster_port=_int("DAGSTER_PORT", 3000),
        simulator_port=_int("SIMULATOR_PORT", 8600),
        portal_workers=_int("PORTAL_WORKERS", 2),
    )
