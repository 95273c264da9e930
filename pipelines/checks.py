"""Asset checks: the data-quality rules of `warehouse.queries` as Dagster check specs and results.

Blocking checks (severity ERROR) guard what customers see: when one fails, the assets downstream of it in the same
run (the monthly rollup and the read-model publish) do not run, so the portal keeps the last good snapshot. The
others are WARN: they show up in the UI and in alerts, but the data is published. docs/operations.md says what
each check means and what to do when it fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import dagster as dg

from warehouse import queries

# (name, blocking, description)
DAILY_CHECKS: tuple[tuple[str, bool, str], ...] = (
    ("no_overlapping_intervals", True,
     "No two readings of a supply and flow cover the same time, and every interval ends on its grid."),
    ("plausible_values", True,
     "No negative interval energy and no interval above AMI_MAX_PLAUSIBLE_KW (default 60 kW) average power."),
    ("complete_days", False,
     "Every active supply has every delivered quarter-hour of every ended local day (92/96/100 on DST days)."),
    ("estimated_share", False,
     "Estimated readings stay under AMI_MAX_ESTIMATED_SHARE (default 5%) of the window's readings."),
    ("fresh", False,
     "The latest reading of each day is at most AMI_MAX_LAG_MINUTES (default 60) behind the day's end or now."),
)
BILL_CHECKS: tuple[tuple[str, bool, str], ...] = (
    ("reconciled", True,
     "Per bill period: billed kWh = register difference on the bill = warehouse register difference = interval "
     "sum, within max(0.01 kWh, 0.1%)."),
)


def specs(asset: str, checks: tuple[tuple[str, bool, str], ...]) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name, asset=asset, blocking=blocking, description=description)
            for name, blocking, description in checks]


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def to_result(asset: str, name: str, blocking: bool, outcome: queries.CheckOutcome) -> dg.AssetCheckResult:
    metadata: dict = {"summary": outcome.summary}
    for key, value in outcome.metadata.items():
        if key in ("sample", "stale_days"):
            metadata[key] = dg.MetadataValue.md(markdown(value))
        elif isinstance(value, dict):
            metadata[key] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
        else:
            metadata[key] = value
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=outcome.summary,
        metadata=metadata,
    )


def evaluate_daily(con, first_day: dt.date, last_day: dt.date) -> dict[str, queries.CheckOutcome]:
    """Run every rule of DAILY_CHECKS over local days first..last."""
    return {
        "no_overlapping_intervals": queries.check_overlapping_intervals(con, first_day, last_day),
        "plausible_values": queries.check_plausible_values(
            con, first_day, last_day, max_kw=_env_float("AMI_MAX_PLAUSIBLE_KW", queries.DEFAULT_MAX_PLAUSIBLE_KW)),
        "complete_days": queries.check_missing_intervals(con, first_day, last_day),
        "estimated_share": queries.check_estimated_share(
            con, first_day, last_day,
            max_share=_env_float("AMI_MAX_ESTIMATED_SHARE", queries.DEFAULT_MAX_ESTIMATED_SHARE)),
        "fresh": queries.check_freshness(
            con, first_day, last_day,
            max_lag_minutes=_env_float("AMI_MAX_LAG_MINUTES", queries.DEFAULT_MAX_LAG_MINUTES)),
    }


def daily_results(asset: str, outcomes: dict[str, queries.CheckOutcome]) -> list[dg.AssetCheckResult]:
    return [to_result(asset, name, blocking, outcomes[name]) for name, blocking, _ in DAILY_CHECKS]


def blocking_failures(outcomes: dict[str, queries.CheckOutcome]) -> list[str]:
    """Names of the blocking rules that failed (a publish must not happen)."""
    blocking = {name for name, is_blocking, _ in DAILY_CHECKS + BILL_CHECKS if is_blocking}
    return [name for name, outcome in outcomes.items() if name in blocking and not outcome.passed]
