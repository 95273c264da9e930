"""Ingest meter-reading files (pushed to the inbox or named on the command line) into the warehouse.

Plain Python, no Dagster: the inbox sensor's job and `ami-portal ingest` both call `ingest_files`, so a file is
handled the same way whichever door it came through. Per file:

1. detect the format from the root element: an IEC 61968-100 envelope (`ResponseMessage`, `EventMessage`, ...)
   or a bare IEC 61968-9 `MeterReadings` document is CIM; an Atom `feed` (or a bare ESPI `entry`) is Green
   Button;
2. parse it: a CIM message in pieces of whole MeterReadings, on every core
   (`cim_ingest.parallel_meter_readings`); any hostile or broken input raises a `CimError` with a specific,
   operator-readable reason;
3. spool the parsed batches to Parquet files (so memory stays flat whatever the file size; batches are spooled
   on a second thread while the next piece is parsed), then merge them into
   the reading tables (newest message wins, see warehouse.loads) and rebuild the daily/monthly rollups of the
   touched local days, all in ONE warehouse transaction: a file is applied entirely or not at all. Readings for
   a usage point the warehouse does not know make the whole file fail (they would otherwise be silently
   dropped);
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
from cim_ingest import parallel_meter_readings
from cim_ingest.parallel_meter_readings import iter_meter_readings_batches
from cim_ingest.xml_safety import root_element_name
from warehouse import loads, rollups
from warehouse.db import connect

log = logging.getLogger(__name__)

PROCESSED = "processed"
QUARANTINE = "quarantine"
SPOOL = "spool"  # parsed batches of the file being ingested, as Parquet, until they are merged
REASON_SUFFIX = ".reason.txt"
PROCESSED_STATUS, QUARANTINED_STATUS = "processed", "quarantined"

CIM_ROOTS = frozenset({"RequestMessage", "ResponseMessage", "EventMessage", "FaultMessage", "MeterReadings"})
GREEN_BUTTON_ROOTS = frozenset({"feed", "entry"})
# DuckDB caches blocks up to its memory limit (by default most of the machine); an ingest needs little.
INGEST_MEMORY_LIMIT = os.environ.get("AMI_INGEST_MEMORY_LIMIT", "256MB")
PIECE_BYTES = parallel_meter_readings.PIECE_BYTES  # XML bytes parsed, and spooled, per batch


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file."""

    path: Path  # where the file ended up (processed/ or quarantine/)
    status: str  # "processed" | "quarantined"
    reason: str | None  # why quarantined (the specific error), None when processed
    readings: int  # interval + register rows applied
    changed_local_dates: list[dt.date]


class _Enlisted:
    """A connection seen through the merge's transaction: the rollups it is handed run their statements inside
    that transaction instead of opening (and committing) their own."""

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
    """(intervals, registers, message timestamp) batches of one file. CIM comes in pieces of whole
    MeterReadings so memory stays flat whatever the file size; a Green Button feed comes as one batch."""
    if kind == "cim":
        header = None
        for chunk in iter_meter_readings_batches(path, PIECE_BYTES):
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


class _Spooler:
    """Spools batches on a thread of its own while the caller parses the next piece (the Parquet writer releases
    the GIL). The queue is bounded, so at most a few batches are in memory."""

    _DONE = object()

    def __init__(self, spool: loads.SpooledReadings):
        self.spool = spool
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="file-ingest-spooler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if self.error is not None:
                continue  # drain without spooling: the file is failing anyway
            intervals, registers, message_at = item
            try:
                self.spool.append("intervals", intervals, message_at)
                self.spool.append("registers", registers, message_at)
            except BaseException as error:  # handed to the parsing thread
                self.error = error

    def put(self, batch: tuple) -> None:
        self._queue.put(batch)

    def finish(self) -> None:
        self._queue.put(self._DONE)
        self._thread.join()


def _rebuild_rollups(enlisted: _Enlisted, days: set[dt.date]) -> list[dt.date]:
    ordered = sorted(days)
    if ordered:
        rollups.rebuild_daily(enlisted, ordered[0], ordered[-1])  # type: ignore[arg-type]
        rollups.rebuild_monthly(enlisted, ordered[0], ordered[-1])  # type: ignore[arg-type]
    return ordered


def _apply(con: duckdb.DuckDBPyConnection, path: Path, kind: str, spool_dir: Path) -> tuple[int, list[dt.date]]:
    """Parse and spool every batch of one file, then merge it and rebuild its days in one transaction."""
    spool = loads.SpooledReadings(con, spool_dir)
    try:
        spooler = _Spooler(spool)
        try:
            for batch in _batches(path, kind):
                if spooler.error is not None:
                    break  # the file is rejected anyway; do not parse the rest
                spooler.put(batch)
        finally:
            spooler.finish()
        if spooler.error is not None:
            raise spooler.error
        unknown, readings = spool.unknown_usage_points()
        if unknown:
            raise UnknownUsagePoints(unknown, readings)
        con.begin()
        try:
            results = spool.merge()
            days = set(results["intervals"].changed_local_dates) if "intervals" in results else set()
            ordered = _rebuild_rollups(_Enlisted(con), days)
        except BaseException:
            con.rollback()
            raise
        con.commit()
    finally:
        spool.close()
    return sum(result.inserted + result.updated for result in results.values()), ordered


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
    text = f"{path.name} was quarantined at {stamp}.\nReason: {reason}\nNothing of this file was loaded.\n"
    (target.parent / (target.name + REASON_SUFFIX)).write_text(text, encoding="utf-8")
    return target


def _reason_of(error: BaseException) -> str:
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
        applied, days = _apply(con, path, kind, data_dir / SPOOL / path.name)
    except Exception as error:  # one bad file must never stop the others
        reason = _reason_of(error)
        if not isinstance(error, (CimError, OSError)):
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
        con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
        return [ingest_file(con, Path(path), data_dir) for path in paths]
    finally:
        con.close()
