"""Parse a large MeterReadings message on every core, in pieces of whole MeterReading elements.

`iter_meter_readings_chunks` (meter_readings.py) is the reference parser: exact, streamed, one element at a
time in Python. This module gives the same batches faster for the files that make up the bulk of the volume:

1. The file is read once, sequentially, and cut, at `</MeterReading>` end tags, into a head (prolog, envelope Header and
   Reply, up to the MeterReadings start tag), pieces of about `piece_bytes` of MeterReading elements, and a tail.
   Cutting at raw end tags is only done when the body holds no comment, CDATA section, processing instruction
   or DOCTYPE (`<!` or `<?` after the XML declaration) and the encoding is UTF-8: then every such byte string
   is a real end tag.
2. The head and tail, joined, form a small document read by the reference parser: envelope, Reply/Result,
   noun, verb and namespaces are checked exactly as for the whole file (FAILED and Fault raise here).
3. A piece made only of regular MeterReadings is read from its text (`_TextReader`): a strict grammar it must
   match whole, then Polars string expressions cut the readings out; no tree is built, and this runs in Polars'
   engine without holding the GIL. Any other piece is wrapped in an element that redeclares the namespaces in
   scope at the cut and parsed with the same safe lxml settings. Regular interval blocks (every IntervalReadings
   is exactly a timeStamp and a value with text) are read with a few compiled XPath expressions per block, in C;
   anything else in the piece (qualities, missing values, registers) goes through the reference per-element
   code. Element counts are compared so that no reading can hide where the reference parser would have seen
   (and refused) it.
4. Pieces are parsed on `workers` threads (default: one per core) while the caller loads the previous batch;
   results come back in document order. Threads, not processes: the text tier does not hold the GIL, so they
   run in parallel with nothing pickled and no interpreter started (pieces for lxml mostly hold it).

Any piece the fast path cannot read exactly, or that holds an error, is parsed again by the reference parser
as `head + piece + tail`, so errors and their messages are the reference parser's for that piece (with several
errors in a file, the reference parser reading it whole might report another first). When the cut itself
turns out wrong (a piece is not well-formed on its own), the whole file is handed to the reference parser;
batches already yielded are then yielded again, which is harmless to an idempotent load in the same
transaction.
"""

from __future__ import annotations

import functools
import io
import os
import re
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Iterator

import polars as pl
from lxml import etree

from cim_ingest.errors import MalformedXml
from cim_ingest.meter_readings import (
    INTERVAL_SCHEMA,
    REGISTER_SCHEMA,
    MeterReadingsBatch,
    _Columns,
    _finish,
    _raw_frame,
    _mrid_of,
    _read_point,
    iter_meter_readings_chunks,
    parse_meter_readings,
    typed_readings,
)
from cim_ingest.reading_types import energy_reading_type
from cim_ingest.xml_safety import safe_feed_parser, safe_pull_parser

PIECE_BYTES = 4 * 1024 * 1024
LOOKAHEAD_BYTES = 256 * 1024  # read past a piece's nominal end to find the next end tag without a second read
# Below this size a file is parsed in the calling thread (handing pieces to threads would not pay).
PARALLEL_MIN_BYTES = 3 * PIECE_BYTES
WORKERS = int(os.environ.get("AMI_INGEST_WORKERS", "0")) or (os.cpu_count() or 1)

_FIRST_METER_READING = re.compile(rb"<([A-Za-z_][\w.\-]*:)?MeterReading[\s/>]")
_DECLARATION = re.compile(rb"\A(?:\xef\xbb\xbf)?<\?xml[^?]*\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")
_thread_local = threading.local()
_RECORD_NAMES = ("IntervalReadings", "IntervalBlocks", "Readings", "MeterReading")


class _NotExact(Exception):
    """The fast path cannot read this piece exactly; the reference parser must."""


class _Layout:
    """Where the pieces of a message are, and what a piece needs to be parsed on its own."""

    def __init__(self, head: bytes, tail: bytes, namespaces: dict[str | None, str], body: tuple[int, int],
                 close_tag: bytes):
        self.head, self.tail, self.namespaces = head, tail, namespaces
        self.body_start, self.body_end = body
        self.close_tag = close_tag

    def wrapper(self) -> tuple[bytes, bytes]:
        declarations = b"".join(
            b' xmlns%s="%s"' % ((b":" + prefix.encode()) if prefix else b"", _attribute(uri))
            for prefix, uri in self.namespaces.items()
        )
        return b"<pieces" + declarations + b">", b"</pieces>"


def _attribute(uri: str) -> bytes:
    return uri.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").encode()


EDGE_BYTES = 4 * 1024 * 1024  # the first MeterReading and the last end tag must lie this close to the file's ends


def _unusual(data: bytes, start: int = 0) -> bool:
    """Comments, CDATA, DOCTYPE or processing instructions: raw end tags may then hide inside them. (`!` and `?`
    are rare in meter data, so looking for them first is a fast memchr; `<` is everywhere.)"""
    return (data.find(b"!", start) != -1 and data.find(b"<!", start) != -1) or (
        data.find(b"?", start) != -1 and data.find(b"<?", start) != -1)


def _layout(handle: BinaryIO, size: int) -> _Layout | None:
    """How to cut the file, or None when it cannot be cut safely (then the reference parser reads it whole)."""
    first_bytes = handle.read(min(size, EDGE_BYTES))
    declaration = _DECLARATION.match(first_bytes)
    start = declaration.end() if declaration else (3 if first_bytes[:3] == b"\xef\xbb\xbf" else 0)
    if declaration:
        encoding = _ENCODING.search(declaration.group(0))
        if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii", b"ascii"):
            return None
    if first_bytes[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None
    first = _FIRST_METER_READING.search(first_bytes, start)
    if first is None or _unusual(first_bytes[: first.start()], start):
        return None
    prefix = first.group(1) or b""
    close_tag = b"</" + prefix + b"MeterReading>"
    last_bytes_at = max(first.start(), size - EDGE_BYTES)
    handle.seek(last_bytes_at)
    last_bytes = handle.read()
    last_close = last_bytes.rfind(close_tag)
    if last_close == -1:
        return None
    body_end = last_bytes_at + last_close + len(close_tag)
    head, tail = first_bytes[: first.start()], last_bytes[last_close + len(close_tag):]
    namespaces = _namespaces_at_end_of(head)
    if namespaces is None or _unusual(tail):
        return None
    return _Layout(head, tail, namespaces, (first.start(), body_end), close_tag)


def _namespaces_at_end_of(head: bytes) -> dict[str | None, str] | None:
    """Namespaces in scope inside the element left open at the end of `head`, when that is a MeterReadings."""
    parser = safe_pull_parser()
    try:
        parser.feed(head)
        open_elements: list[etree._Element] = []
        for event, element in parser.read_events():
            if event == "start":
                open_elements.append(element)
            else:
                open_elements.pop()
    except etree.XMLSyntaxError:
        return None
    if not open_elements or etree.QName(open_elements[-1]).localname != "MeterReadings":
        return None
    return dict(open_elements[-1].nsmap)


def _pieces(handle: BinaryIO, layout: _Layout, piece_bytes: int) -> Iterator[bytes]:
    """The body, cut after the first end tag past every `piece_bytes`. A piece holding a comment, CDATA, DOCTYPE
    or processing instruction raises `_Reference`: the cut may then have been made inside one."""
    tag = layout.close_tag
    position = layout.body_start
    while position < layout.body_end:
        handle.seek(position)
        want = min(piece_bytes + LOOKAHEAD_BYTES, layout.body_end - position)
        block = handle.read(want)
        cut = block.find(tag, max(0, piece_bytes - len(tag)))
        while cut == -1 and position + len(block) < layout.body_end:  # one MeterReading longer than the lookahead
            more = handle.read(min(piece_bytes, layout.body_end - position - len(block)))
            block += more
            cut = block.find(tag, max(0, piece_bytes - len(tag)))
        piece = block if cut == -1 else block[: cut + len(tag)]
        if _unusual(piece):
            raise _Reference
        yield piece
        position += len(piece)


class _PieceReader:
    """Compiled expressions for one MeterReadings namespace (built once per parse thread and namespace)."""

    def __init__(self, namespace: str):
        ns = {"m": namespace}
        self.tag = {name: f"{{{namespace}}}{name}" for name in
                    ("MeterReading", "IntervalBlocks", "IntervalReadings", "Readings", "ReadingType", "UsagePoint",
                     "Meter")}

        def xpath(expression: str) -> etree.XPath:
            return etree.XPath(expression, namespaces=ns, smart_strings=False)

        self.readings = xpath("count(m:IntervalReadings)")
        self.reading_children = xpath("count(m:IntervalReadings/*)")
        self.timestamps = xpath("count(m:IntervalReadings/m:timeStamp)")
        self.values = xpath("count(m:IntervalReadings/m:value)")
        self.reading_child_nodes = xpath("count(m:IntervalReadings/*/node())")
        self.texts = xpath("m:IntervalReadings/*/text()")
        names = " or ".join(f"local-name()='{name}'" for name in _RECORD_NAMES)
        self.records_below = etree.XPath(f"count(.//*[{names}])", smart_strings=False)

    @classmethod
    def of(cls, namespace: str) -> "_PieceReader":
        """The reader of `namespace` for this thread (lxml's compiled XPath expressions are not shared between
        threads)."""
        readers = _thread_local.__dict__.setdefault("piece_readers", {})
        if namespace not in readers:
            readers[namespace] = cls(namespace)
        return readers[namespace]

    def read(self, root: etree._Element) -> tuple[_Columns, _Columns]:
        intervals, registers = _Columns(), _Columns()
        for meter_reading in root:
            if meter_reading.tag != self.tag["MeterReading"]:
                raise _NotExact
            interval_mark, register_mark = len(intervals), len(registers)
            usage_point = meter = None
            for child in meter_reading:
                tag = child.tag
                if tag == self.tag["IntervalBlocks"]:
                    self._read_block(child, intervals)
                    continue
                if tag == self.tag["Readings"]:
                    if self.records_below(child):
                        raise _NotExact
                    code = _read_point(child, registers)
                    if not code:
                        raise _NotExact
                    registers.reading_type.append(code.strip())
                    continue
                if not isinstance(tag, str) or self.records_below(child):
                    raise _NotExact
                if tag == self.tag["UsagePoint"]:
                    usage_point = _mrid_of(child)
                elif tag == self.tag["Meter"]:
                    meter = _mrid_of(child)
                elif etree.QName(tag).localname in ("UsagePoint", "Meter", *_RECORD_NAMES):
                    raise _NotExact
            added_intervals, added_registers = len(intervals) - interval_mark, len(registers) - register_mark
            if usage_point is None and (added_intervals or added_registers):
                raise _NotExact
            for columns, added in ((intervals, added_intervals), (registers, added_registers)):
                columns.usage_point.extend([usage_point] * added)
                columns.meter.extend([meter] * added)
        return intervals, registers

    def _read_block(self, block: etree._Element, columns: _Columns) -> None:
        reading_type_element = next(block.iterchildren(self.tag["ReadingType"], reversed=True), None)
        code = reading_type_element.get("ref") if reading_type_element is not None else None
        if not code or len(reading_type_element):
            raise _NotExact
        reading_type = energy_reading_type(code.strip())
        if not reading_type.is_interval:
            raise _NotExact
        readings = int(self.readings(block))
        texts = self.texts(block)
        regular = (
            len(block) == readings + 1  # the readings and their ReadingType, nothing else
            and len(texts) == 2 * readings
            and int(self.reading_children(block)) == 2 * readings
            and int(self.timestamps(block)) == readings
            and int(self.values(block)) == readings
            and int(self.reading_child_nodes(block)) == 2 * readings
        )
        if regular:
            # Each IntervalReadings is a timeStamp and a value, one text each; the order within a reading is
            # checked afterwards by the types (a timestamp never parses as a number, nor a number as a time).
            columns.timestamp.extend(texts[0::2])
            columns.value.extend(texts[1::2])
            columns.codes.extend([""] * readings)
        else:
            if self.records_below(block) != readings:
                raise _NotExact
            for reading in block.iterchildren(self.tag["IntervalReadings"]):
                _read_point(reading, columns)
        columns.reading_type.extend([reading_type.code] * readings)


# The text grammar is run by Polars' regex engine (Rust `regex`: linear time, no backtracking, and it runs without
# holding the GIL, so pieces are read on threads in parallel).
_WS = "[ \t\r\n]*"  # whitespace between elements (tails lxml would give, and the readers ignore)
# Character data the text reader takes as is: ASCII letters, digits, `:.+-_/,`, space, tab and newline. No `&`
# (entities), `<`, `]` (`]]>`), CR (line-end normalisation), other controls or non-ASCII: a text holding
# anything else sends the piece to lxml, which knows what such characters mean or which are not allowed.
_TEXT = "[0-9A-Za-z:.+\\-_/, \t\n]+"
_REF = "[0-9A-Za-z.:_\\-]*"
_QUALITY_REF = "[0-9A-Za-z.:_\\-]+"  # an empty one is an error, which the reference parser words


class _TextReader:
    """Regular MeterReading elements read from the piece's text by a grammar, without building a tree.

    The whole piece must match a strict subset of XML (`grammar`): MeterReading elements holding IntervalBlocks
    (IntervalReadings of a timeStamp, then a value or none, then ReadingQualities each holding one or more
    `ReadingQualityType ref`, and one `ReadingType ref` anywhere among the readings), Meter and UsagePoint elements
    (each exactly an mRID), whitespace between elements, every element with the prefix of the cut's MeterReading
    end tag and no attribute but `ref` (so no namespace is declared inside the piece), non-empty texts of the
    characters in `_TEXT` only, and non-empty quality refs. Such a piece is well-formed XML whose tree holds
    exactly what the matched texts say, so the readings are those `_PieceReader` takes from lxml's tree; a piece
    that does not match goes to lxml. The readings are then cut out of the text by Polars string expressions
    (split at the end tags, the texts after the start tags), which the grammar makes exact: every tag is where
    the grammar says, and no text holds a `<`. Two Meter or UsagePoint elements in one MeterReading also go to
    lxml, which decides.
    """

    def __init__(self, prefix: str):
        names = ("MeterReading", "IntervalBlocks", "IntervalReadings", "timeStamp", "value", "ReadingType",
                 "UsagePoint", "Meter", "mRID", "ReadingQualities", "ReadingQualityType")
        tag = {name: re.escape(f"{prefix}{name}") for name in names}  # in patterns (a prefix may hold a '.')

        def element(name: str, content: str) -> str:
            return f"<{tag[name]}>{content}</{tag[name]}>"

        def with_ref(name: str, ref: str) -> str:  # an element whose only content is its `ref` attribute
            return (f"<{tag[name]}[ \t\r\n]+ref{_WS}={_WS}(?:\"{ref}\"|'{ref}'){_WS}"
                    f"(?:/>|></{tag[name]}>)")

        qualities = element("ReadingQualities", f"{_WS}(?:{with_ref('ReadingQualityType', _QUALITY_REF)}{_WS})+")
        reading = element("IntervalReadings", f"{_WS}{element('timeStamp', _TEXT)}{_WS}"
                                              f"(?:{element('value', _TEXT)}{_WS})?(?:{qualities}{_WS})*")
        reading_type = with_ref("ReadingType", _REF)
        block = element("IntervalBlocks", f"{_WS}(?:{reading}{_WS})*{reading_type}{_WS}(?:{reading}{_WS})*")
        mrid = f"{_WS}{element('mRID', _TEXT)}{_WS}"
        meter_reading = element(
            "MeterReading", f"{_WS}(?:(?:{block}|{element('Meter', mrid)}|{element('UsagePoint', mrid)}){_WS})*")
        self.grammar = f"^{_WS}(?:{meter_reading}{_WS})*$"
        self.start = {name: f"<{prefix}{name}>" for name in names}  # literal
        self.end = {name: f"</{prefix}{name}>" for name in names}
        self.ref = f"<{tag['ReadingType']}[ \t\r\n]+ref{_WS}={_WS}[\"']({_REF})[\"']"
        self.mrid = {name: f"<{tag[name]}>{_WS}<{tag['mRID']}>({_TEXT})</" for name in ("UsagePoint", "Meter")}
        self.quality_ref = f"<{tag['ReadingQualityType']}[ \t\r\n]+ref{_WS}={_WS}[\"']{_QUALITY_REF}"
        self.quality_start = f"<{prefix}ReadingQualityType"

    @classmethod
    @functools.cache
    def of(cls, prefix: str) -> "_TextReader":
        return cls(prefix)

    def matches(self, text: str) -> bool:
        return pl.select(pl.lit(text).str.contains(self.grammar)).item()

    def read(self, piece: bytes) -> pl.DataFrame:
        """The piece's interval readings as raw texts (`RAW_SCHEMA`); `_NotExact` when the grammar refuses it."""
        try:  # decoded by Polars (a piece that is not UTF-8 goes to lxml, which reports it)
            frame = pl.DataFrame({"piece": pl.Series([piece], dtype=pl.Binary).cast(pl.Utf8)})
        except pl.exceptions.ComputeError:
            raise _NotExact from None
        matches, has_qualities = frame.select(
            pl.col("piece").str.contains(self.grammar).alias("matches"),
            pl.col("piece").str.contains(self.quality_start, literal=True).alias("has_qualities"),
        ).row(0)
        if not matches:
            raise _NotExact
        start, end = self.start, self.end
        reading = pl.col("reading")
        value_at = reading.str.find(start["value"], literal=True) + len(start["value"])  # null: no value
        # Quality refs, in document order, joined as the reference parser joins them; looked for only in a piece
        # that has any (a regular expression per reading costs as much as the rest of the reading).
        if has_qualities:
            quality_codes = (reading.str.slice(0, reading.str.find(end["IntervalReadings"], literal=True))
                             .str.extract_all(self.quality_ref)
                             .list.eval(pl.element().str.replace(r"^[^\"']*[\"']", "")).list.join(";"))
        else:
            quality_codes = pl.lit("", dtype=pl.Utf8)
        rows = (
            frame.lazy()
            .select(pl.col("piece").str.split(end["MeterReading"]).alias("meter_reading"))
            .explode("meter_reading")
            .filter(pl.col("meter_reading").str.contains(start["IntervalBlocks"], literal=True))
            .select(
                pl.col("meter_reading").str.count_matches(start["UsagePoint"], literal=True).alias("usage_points"),
                pl.col("meter_reading").str.count_matches(start["Meter"], literal=True).alias("meters"),
                pl.col("meter_reading").str.extract(self.mrid["UsagePoint"]).str.strip_chars().replace("", None)
                .alias("usage_point_mrid"),
                pl.col("meter_reading").str.extract(self.mrid["Meter"]).str.strip_chars().replace("", None)
                .alias("meter_mrid"),
                pl.col("meter_reading").str.split(end["IntervalBlocks"]).alias("block"),
            )
            .explode("block")
            .filter(pl.col("block").str.contains(start["IntervalBlocks"], literal=True))
            .select(
                "usage_points", "meters", "usage_point_mrid", "meter_mrid",
                pl.col("block").str.extract(self.ref).alias("reading_type"),
                pl.col("block").str.split(start["timeStamp"]).list.slice(1).alias("reading"),
            )
            # each: the timestamp's text, its end tag, then the value element; a block without readings becomes
            # one null row, so that its ReadingType is checked too
            .explode("reading", empty_as_null=True)
            .with_columns(
                reading.is_not_null().alias("has_reading"),
                reading.str.slice(0, reading.str.find("<", literal=True)).alias("timestamp_text"),
                reading.str.slice(value_at, reading.str.find(end["value"], literal=True) - value_at).alias(
                    "value_text"),
                quality_codes.alias("quality_codes"),
            )
            .collect(engine="in-memory")  # a plan of one row exploded twice: faster than the streaming engine
        )
        codes = {}
        for raw_code in rows["reading_type"].unique().to_list():  # every block's, those without readings too
            reading_type = energy_reading_type(raw_code.strip())  # raises for an empty or unknown code
            if not reading_type.is_interval:
                raise _NotExact
            codes[raw_code] = reading_type.code
        rows = rows.filter("has_reading")
        if rows.height and (rows["usage_points"].max() > 1 or rows["meters"].max() > 1
                            or rows["usage_point_mrid"].null_count()):
            raise _NotExact
        return rows.select(
            "usage_point_mrid", "meter_mrid",
            pl.col("reading_type").replace_strict(codes, return_dtype=pl.Utf8),
            "timestamp_text", "value_text", "quality_codes",
        )


def _parse_piece(piece: bytes, wrapper: tuple[bytes, bytes], namespace: str,
                 prefix: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """Typed interval and register frames of one piece, or None when the reference parser must read it.
    `prefix` is the one the cut's MeterReading end tag carries (`m:`, or "" for the default namespace), or None
    when the text tier must not be used (see `_text_prefix`)."""
    try:
        try:
            if prefix is None:
                raise _NotExact
            intervals, registers = _TextReader.of(prefix).read(piece), None
        except _NotExact:
            parser = safe_feed_parser()
            for part in (wrapper[0], piece, wrapper[1]):  # fed in turn: no copy of the piece
                parser.feed(part)
            root = parser.close()
            interval_columns, register_columns = _PieceReader.of(namespace).read(root)
            del root
            intervals = _raw_frame(interval_columns) if len(interval_columns) else None
            registers = _raw_frame(register_columns) if len(register_columns) else None
        interval_frame = typed_readings(intervals, is_interval=True) if intervals is not None and intervals.height \
            else _EMPTY_INTERVALS
        register_frame = typed_readings(registers, is_interval=False) if registers is not None else _EMPTY_REGISTERS
    except Exception:  # any doubt: the reference parser decides, with its own error message
        return None
    return interval_frame, register_frame


_EMPTY_INTERVALS = pl.DataFrame(schema={k: v for k, v in INTERVAL_SCHEMA.items() if k != "source_message_id"})
_EMPTY_REGISTERS = pl.DataFrame(schema={k: v for k, v in REGISTER_SCHEMA.items() if k != "source_message_id"})


class _Reference(Exception):
    """The cut was wrong: read the whole file with the reference parser."""


def iter_meter_readings_batches(source: Path | str | bytes, piece_bytes: int = PIECE_BYTES,
                                workers: int | None = None) -> Iterator[MeterReadingsBatch]:
    """The batches of `iter_meter_readings_chunks(source)` (same rows, same errors, same final header on the
    last batch), parsed in pieces on `workers` threads; one batch per piece. `source` is a file path or the
    message's bytes."""
    if isinstance(source, bytes | bytearray):
        opened, size = io.BytesIO(source), len(source)
    else:
        source = Path(source)
        opened, size = open(source, "rb"), source.stat().st_size
    with opened as handle:
        layout = _layout(handle, size) if size else None
        if layout is None:
            yield from iter_meter_readings_chunks(source)
            return
        envelope = parse_meter_readings(layout.head + layout.tail)  # raises for a bad envelope, FAILED, Fault
        header = envelope.header
        message_id = header.message_id or ""
        try:
            for intervals, registers in _parsed_pieces(handle, layout, piece_bytes, workers, size):
                yield MeterReadingsBatch(header=header, intervals=_finish([intervals], INTERVAL_SCHEMA, message_id),
                                         registers=_finish([registers], REGISTER_SCHEMA, message_id))
        except _Reference:
            yield from iter_meter_readings_chunks(source)
            return
        yield envelope  # readings outside the pieces (normally none) and the final header


def _parsed_pieces(handle: BinaryIO, layout: _Layout, piece_bytes: int, workers: int | None,
                   size: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    wrapper = layout.wrapper()
    namespace = layout.namespaces.get(_prefix_of(layout), "")
    prefix = _text_prefix(layout)
    workers = workers or WORKERS
    pieces = _pieces(handle, layout, piece_bytes)
    if workers <= 1 or size < PARALLEL_MIN_BYTES:
        for piece in pieces:
            yield _exactly(piece, _parse_piece(piece, wrapper, namespace, prefix), layout)
        return
    # Threads, not processes: the text tier runs in Polars without the GIL, so nothing is pickled between
    # processes and no interpreter is started. At most `workers + 1` pieces are in flight (memory stays flat).
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cim-parse") as pool:
        pending: deque[tuple[bytes, Future]] = deque()
        try:
            for piece in pieces:
                pending.append((piece, pool.submit(_parse_piece, piece, wrapper, namespace, prefix)))
                if len(pending) > workers:
                    done_piece, future = pending.popleft()
                    yield _exactly(done_piece, future.result(), layout)
            while pending:
                done_piece, future = pending.popleft()
                yield _exactly(done_piece, future.result(), layout)
        finally:
            for _piece, future in pending:  # the caller stopped early (an error, or it had enough)
                future.cancel()


def _text_prefix(layout: _Layout) -> str | None:
    """The tag prefix the text tier reads pieces with (`m:`, or "" for the default namespace), or None when the
    cut's prefix is not declared before the body or names no namespace: lxml and the reference parser then decide
    (a piece cannot declare it: the grammar allows no attribute but `ref`)."""
    prefix = _prefix_of(layout)
    if not layout.namespaces.get(prefix):
        return None
    return f"{prefix}:" if prefix else ""


def _prefix_of(layout: _Layout) -> str | None:
    prefix = layout.close_tag[2:-len(b"MeterReading>")].rstrip(b":").decode()
    return prefix or None


def _exactly(piece: bytes, parsed: tuple[pl.DataFrame, pl.DataFrame] | None,
             layout: _Layout) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`parsed`, or the reference parser's reading of the piece (which raises the reference error)."""
    if parsed is not None:
        return parsed
    try:
        batch = parse_meter_readings(layout.head + piece + layout.tail)
    except MalformedXml as error:
        raise _Reference from error
    columns = [name for name in INTERVAL_SCHEMA if name != "source_message_id"]
    register_columns = [name for name in REGISTER_SCHEMA if name != "source_message_id"]
    return batch.intervals.select(columns), batch.registers.select(register_columns)
