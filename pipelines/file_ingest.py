"""Ingest meter-reading files (pushed to the inbox or named on the command line) into the warehouse.

Plain Python, no Dagster: the inbox sensor's job and `ami-portal ingest` both call `ingest_files`, so a file is
handled the same way whichever door it came through. Per file:

1. detect the format from the root element: an IEC 61968-100 envelope (`ResponseMessage`, `EventMessage`, ...)
   or a bare IEC 61968-9 `MeterReadings` document is CIM; an Atom `feed` (or a bare ESPI `entry`) is Green
   Button;
2. parse it, streamed: a CIM message is read and loaded in chunks of whole MeterReadings (`CHUNK_ROWS`
   readings), so memory stays flat whatever the file size; any hostile or broken input raises a `CimError` with a
   specific, operator-readable reason;
3. load intervals and registers (newest message wins, see warehouse.loads) and rebuild the daily/monthly rollups
   of the touched local days, all in ONE warehouse transaction: a file is applied entirely or not at all.
   Readings for a usage point the warehouse does not know make the whole file fail (they would otherwise be
   silently dropped). Chunks are loaded on a second thread while the next one is parsed, so parsing and DuckDB
   each use a core. Large CIM files (over `AMI_INGEST_LARGE_FILE_MB`, default 64 MB) are different, because
   DuckDB keeps a transaction's uncommitted rows of an indexed table in memory (~1 KB per reading): such a file
   is first parsed once without writing anything (every content error and unknown usage point is found there),
   then loaded with a commit after each chunk, so memory stays flat. Only an infrastructure failure during that
   second pass (disk full, process killed) can leave it partly applied; the reason file then says how much, and
   ingesting it again is safe (the same readings again change nothing);
4. move the file to `data_dir/processed/` or to `data_dir/quarantine/` next to a `<name>.reason.txt` that says
   what failed. One bad file never stops the others.

Publishing the read model is the caller's job (one publish after a batch of files, not one per file).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import polars as pl

from cim_ingest.errors import CimError, MalformedXml, UnexpectedMessage, UnknownUsagePoints
from cim_ingest.greenbutton import parse_green_button
from cim_ingest.meter_readings import iter_meter_readings_chunks
from cim_ingest.xml_safety import root_element_name
from warehouse import loads, rollups
from warehouse.db import connect

log = logging.getLogger(__name__)

PROCESSED = "processed"
QUARANTINE = "quarantine"
REASON_SUFFIX = ".reason.txt"
PROCESSED_STATUS, QUARANTINED_STATUS = "processed", "quarantined"

CIM_ROOTS = frozenset({"RequestMessage", "ResponseMessage", "EventMessage", "FaultMessage", "MeterReadings"})
GREEN_BUTTON_ROOTS = frozenset({"feed", "entry"})
CHUNK_ROWS = 100_000  # readings parsed and loaded per step (whole MeterReadings), bounding memory
# CIM files above this size are validated in a first parse-only pass, then loaded in committed chunks (see doc).
LARGE_FILE_BYTES = int(float(os.environ.get("AMI_INGEST_LARGE_FILE_MB", "64")) * 1_000_000)


class PartiallyApplied(Exception):
    """A large file failed while loading, after its validation pass, with some chunks already committed."""

    def __init__(self, error: BaseException, readings: int):
        self.error = error
        self.readings = readings
        super().__init__(str(error))


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file."""

    path: Path  # where the file ended up (processed/ or quarantine/)
    status: str  # "processed" | "quarantined"
    reason: str | None  # why quarantined (the specific error), None when processed
    readings: int  # interval + register rows applied
    changed_local_dates: list[dt.date]


class _Enlisted:
    """A connection seen through a file's outer transaction: the loads and rollups it is handed run their
    statements inside that transaction instead of opening (and committing) their own."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def begin(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass  # the exception propagates to the outer transaction, which rolls back everything

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def detect_format(path: Path) -> str:
    """`cim` or `greenbutton`, from the root element's local name; CimError when it is neither."""
    name = root_element_name(path)
    if name in CIM_ROOTS:
        return "cim"
    if name in GREEN_BUTTON_ROOTS:
        return "greenbutton"
    raise UnexpectedMessage(
        f"Root element {name!r} is neither a CIM message (an IEC 61968-100 envelope or MeterReadings) nor a "
        "Green Button Atom feed; the file was not read further."
    )


def _batches(path: Path, kind: str) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, dt.datetime | None]]:
    """(intervals, registers, message timestamp) batches of one file. CIM is streamed in chunks of whole
    MeterReadings so memory stays flat whatever the file size; a Green Button feed comes as one batch."""
    if kind == "cim":
        header = None
        for chunk in iter_meter_readings_chunks(path, CHUNK_ROWS):
            header = chunk.header
            yield chunk.intervals, chunk.registers, header.timestamp
        if header is not None and header.errors:
            log.warning(
                "%s: reply %s carries errors: %s", path.name, header.result,
                "; ".join(f"[{e.level}] {e.code}: {e.reason}" for e in header.errors),
            )
        return
    feed = parse_green_button(path)
    yield feed.intervals, feed.registers, feed.published


class _Loader:
    """Loads batches into the warehouse on a thread of its own while the caller parses the next chunk: lxml
    parsing holds the GIL, DuckDB releases it while it executes, so the two overlap on two cores. The queue is
    bounded, so at most a few chunks are in memory. The connection is used by this thread only until `finish`."""

    _DONE = object()

    def __init__(self, con: duckdb.DuckDBPyConnection, commit_each_chunk: bool = False):
        self.con = con
        self.commit_each_chunk = commit_each_chunk
        self.enlisted = _Enlisted(con)
        self.applied = 0
        self.skipped = 0
        self.days: set[dt.date] = set()
        self.unknown: set[str] = set()
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="file-ingest-loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if self.error is not None or self.unknown:
                continue  # drain without loading: the file is failing anyway
            try:
                self._load(*item)
                if self.commit_each_chunk and not self.unknown:
                    self.con.commit()
                    self.con.begin()
            except BaseException as error:  # handed to the parsing thread
                self.error = error

    def _load(self, intervals: pl.DataFrame, registers: pl.DataFrame, message_at: dt.datetime | None) -> None:
        for frame, load in ((intervals, loads.upsert_interval_readings), (registers, loads.upsert_register_reads)):
            if frame.height == 0:
                continue
            result = load(self.enlisted, frame, message_at=message_at)  # type: ignore[arg-type]
            self.applied += result.inserted + result.updated
            self.unknown.update(result.unknown_usage_points)
            self.skipped += result.skipped_rows
            if load is loads.upsert_interval_readings:
                self.days.update(result.changed_local_dates)

    @property
    def failing(self) -> bool:
        return self.error is not None or bool(self.unknown)

    def put(self, batch: tuple) -> None:
        self._queue.put(batch)

    def finish(self) -> None:
        self._queue.put(self._DONE)
        self._thread.join()


def _validate(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Parse-only pass over a large CIM file: every content error, and readings for unknown usage points, are
    found before anything is written. Memory stays flat (chunks are dropped as they come)."""
    usage_points: dict[str, int] = {}
    for chunk in iter_meter_readings_chunks(path, CHUNK_ROWS):
        for frame in (chunk.intervals, chunk.registers):
            for mrid, count in frame.group_by("usage_point_mrid").len().iter_rows():
                usage_points[mrid] = usage_points.get(mrid, 0) + count
    if not usage_points:
        return
    known = {
        row[0]
        for row in con.execute(
            "SELECT usage_point_mrid FROM supplies WHERE list_contains(?, usage_point_mrid)", [list(usage_points)]
        ).fetchall()
    }
    unknown = sorted(set(usage_points) - known)
    if unknown:
        raise UnknownUsagePoints(unknown, sum(usage_points[mrid] for mrid in unknown))


def _rebuild_rollups(enlisted: _Enlisted, days: set[dt.date]) -> list[dt.date]:
    ordered = sorted(days)
    if ordered:
        rollups.rebuild_daily(enlisted, ordered[0], ordered[-1])  # type: ignore[arg-type]
        rollups.rebuild_monthly(enlisted, ordered[0], ordered[-1])  # type: ignore[arg-type]
    return ordered


def _salvage(con: duckdb.DuckDBPyConnection, loader: _Loader) -> None:
    """After a failure with chunks already committed: drop the failed chunk, bring the rollups of the committed
    days up to date, and leave a transaction open for the caller's rollback."""
    try:
        con.rollback()
        con.begin()
        _rebuild_rollups(loader.enlisted, loader.days)
        con.commit()
    except duckdb.Error:
        log.exception("Could not rebuild the rollups after a partly applied file; rebuild them with a reload")
    con.begin()


def _apply(
    con: duckdb.DuckDBPyConnection, path: Path, kind: str, commit_each_chunk: bool = False
) -> tuple[int, list[dt.date]]:
    """Load every batch of one file and rebuild its days, inside the caller's transaction (which is committed
    after each chunk when `commit_each_chunk`)."""
    loader = _Loader(con, commit_each_chunk)
    try:
        for batch in _batches(path, kind):
            if loader.failing:
                break  # the file is rejected anyway; do not parse the rest
            loader.put(batch)
    except BaseException as error:
        loader.finish()
        if commit_each_chunk and loader.applied:
            _salvage(con, loader)
            raise PartiallyApplied(error, loader.applied) from error
        raise
    loader.finish()
    if loader.error is not None:
        if commit_each_chunk and loader.applied:
            _salvage(con, loader)
            raise PartiallyApplied(loader.error, loader.applied) from loader.error
        raise loader.error
    if loader.unknown:
        raise UnknownUsagePoints(sorted(loader.unknown), loader.skipped)
    return loader.applied, _rebuild_rollups(loader.enlisted, loader.days)


def _free_name(directory: Path, name: str) -> Path:
    """`directory/name`, or `name` with a counter before its suffix when that is taken (never overwrite)."""
    target = directory / name
    counter = 1
    while target.exists() or (directory / (target.name + REASON_SUFFIX)).exists():
        stem, dot, suffix = name.partition(".")
        target = directory / f"{stem}-{counter}{dot}{suffix}"
        counter += 1
    return target


def _move(path: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if path.parent.resolve() == directory.resolve():
        return path
    target = _free_name(directory, path.name)
    try:
        os.replace(path, target)
    except OSError:
        import shutil

        shutil.copy2(path, target)
        path.unlink()
    return target


def _quarantine(path: Path, data_dir: Path, reason: str) -> Path:
    target = _move(path, data_dir / QUARANTINE) if path.exists() else data_dir / QUARANTINE / path.name
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    applied = "" if "readings of it were applied" in reason else "Nothing of this file was loaded.\n"
    text = f"{path.name} was quarantined at {stamp}.\nReason: {reason}\n{applied}"
    (target.parent / (target.name + REASON_SUFFIX)).write_text(text, encoding="utf-8")
    return target


def _reason_of(error: BaseException) -> str:
    if isinstance(error, PartiallyApplied):
        return (
            f"{_reason_of(error.error)} This large file had passed its validation pass and was being loaded in "
            f"committed chunks: {error.readings} readings of it were applied before the failure. Fix the cause "
            "and ingest it again (the same readings again change nothing)."
        )
    if isinstance(error, CimError):
        return f"{type(error).__name__}: {error}"
    if isinstance(error, OSError):
        return f"The file could not be read ({error.strerror or error}); check it exists and is readable."
    if isinstance(error, duckdb.Error):
        return f"The warehouse refused the data ({type(error).__name__}: {error})."
    return f"Unexpected {type(error).__name__}: {error}. See the ingest log for the stack trace."


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, data_dir: Path) -> FileOutcome:
    """Ingest one file on an open read-write warehouse connection; see the module docstring."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise MalformedXml("The file is empty (0 bytes); it may have been copied before it was complete.")
        kind = detect_format(path)
        large = kind == "cim" and path.stat().st_size > LARGE_FILE_BYTES
        if large:
            _validate(con, path)
        con.begin()
        try:
            applied, days = _apply(con, path, kind, commit_each_chunk=large)
        except BaseException:
            con.rollback()
            raise
        con.commit()
    except Exception as error:  # one bad file must never stop the others
        reason = _reason_of(error)
        if not isinstance(error, (CimError, OSError, PartiallyApplied)):
            log.error("Ingesting %s failed unexpectedly:\n%s", path, traceback.format_exc())
        target = _quarantine(path, data_dir, reason)
        log.warning("Quarantined %s: %s", path.name, reason)
        return FileOutcome(path=target, status=QUARANTINED_STATUS, reason=reason, readings=0, changed_local_dates=[])
    target = _move(path, data_dir / PROCESSED)
    log.info("Ingested %s (%s): %d readings applied, %d local days changed", path.name, kind, applied, len(days))
    return FileOutcome(path=target, status=PROCESSED_STATUS, reason=None, readings=applied, changed_local_dates=days)


def ingest_files(paths: Sequence[Path], data_dir: Path) -> list[FileOutcome]:
    """Ingest `paths` in order into `data_dir/warehouse.duckdb`; one outcome per file. Does not publish."""
    data_dir = Path(data_dir)
    if not paths:
        return []
    con = connect(data_dir / "warehouse.duckdb")
    try:
        con.execute("SET enable_progress_bar = false")  # DuckDB would draw bars on the CLI's stdout
        return [ingest_file(con, Path(path), data_dir) for path in paths]
    finally:
        con.close()
