"""The inbox sensor: files put in `<data dir>/inbox/` are ingested by `inbox_job` and then published.

Writers put a file in place atomically: write it elsewhere on the same filesystem (or under a name starting with
`.` or ending in `.tmp`/`.part`, which the sensor ignores), then rename it in. The sensor asks for one run per tick
with every new file, under a stable run key made of the files' names, sizes and modification times, so a tick
evaluated twice never ingests twice. Its cursor remembers the files already requested while they are still in
the inbox (the run moves them out); one still there after `AMI_INBOX_RETRY_SECONDS` is requested again (its run
failed before moving it).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import dagster as dg

from pipelines import settings
from pipelines.jobs import inbox_job

IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".reason.txt")
MAX_FILES_PER_RUN = 200


def inbox_files(inbox: Path) -> list[tuple[Path, str]]:
    """(path, key) of the complete files in the inbox, oldest first; key = name:size:mtime_ns."""
    if not inbox.is_dir():
        return []
    found = []
    for path in inbox.iterdir():
        if path.name.startswith(".") or path.name.endswith(IGNORED_SUFFIXES):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved out by a run between listing and stat
            continue
        if not path.is_file():
            continue
        found.append((stat.st_mtime_ns, path.name, path, f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"))
    found.sort()
    return [(path, key) for _, _, path, key in found]


def plan_inbox_run(
    files: list[tuple[Path, str]], cursor: str | None, now: float, retry_seconds: float
) -> tuple[dg.RunRequest | None, str]:
    """The run request for the files not yet requested (or requested too long ago) and the new cursor."""
    requested: dict[str, float] = json.loads(cursor) if cursor else {}
    present = {key for _, key in files}
    requested = {key: at for key, at in requested.items() if key in present}  # gone: processed or quarantined
    new = [(path, key) for path, key in files if key not in requested or now - requested[key] >= retry_seconds]
    new = new[:MAX_FILES_PER_RUN]
    if not new:
        return None, json.dumps(requested, sort_keys=True)
    attempts = {key: 1 + int(key in requested) for _, key in new}
    digest = hashlib.sha256("\n".join(f"{key}#{attempts[key]}" for _, key in new).encode()).hexdigest()[:24]
    for _, key in new:
        requested[key] = now
    request = dg.RunRequest(
        run_key=f"inbox:{digest}",
        run_config={"ops": {"ingest_inbox_files": {"config": {"paths": [str(path) for path, _ in new]}}}},
        tags={"ami/trigger": "inbox", "ami/files": str(len(new))},
    )
    return request, json.dumps(requested, sort_keys=True)


@dg.sensor(
    job=inbox_job,
    minimum_interval_seconds=settings.inbox_sensor_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Ingest files put in the inbox (CIM MeterReadings events or replies, Green Button feeds).",
)
def inbox_sensor(context: dg.SensorEvaluationContext):
    inbox = settings.data_dir() / "inbox"
    request, cursor = plan_inbox_run(inbox_files(inbox), context.cursor, time.time(), settings.inbox_retry_seconds())
    context.update_cursor(cursor)
    if request is None:
        return dg.SkipReason(f"No new file in {inbox}.")
    return request
