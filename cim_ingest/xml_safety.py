"""The one place that parses XML. Every parser here refuses DOCTYPE declarations outright (which also rules out
XXE and entity-expansion bombs), never resolves entities, never touches the network, never loads a DTD and
keeps libxml2's size limits (`huge_tree=False`). lxml errors come out as `MalformedXml` / `UnsafeXml`."""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Union

from lxml import etree

from cim_ingest.errors import MalformedXml, UnsafeXml

XmlSource = Union[bytes, str, Path, BinaryIO]

_SAFE_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def safe_parser() -> etree.XMLParser:
    """A parser for whole (small) documents; DOCTYPE is rejected by the callers of `parse_document`."""
    return etree.XMLParser(dtd_validation=False, remove_pis=True, **_SAFE_OPTIONS)


def safe_feed_parser() -> etree.XMLParser:
    """A parser to `feed()` a fragment built in parts (a piece of a large message inside a wrapper element that
    the caller writes: no DOCTYPE can be in it, the caller checks the raw bytes hold no `<!`)."""
    return etree.XMLParser(**_SAFE_OPTIONS)


def safe_pull_parser() -> etree.XMLPullParser:
    """A pull parser for the start of a document (its prolog and envelope, before the payload), start and end
    events; comments and processing instructions dropped."""
    return etree.XMLPullParser(events=("start", "end"), remove_pis=True, remove_comments=True, **_SAFE_OPTIONS)


def local_name(tag: object) -> str:
    """`{namespace}Name` -> `Name`; comments and processing instructions have no local name ('')."""
    if not isinstance(tag, str):
        return ""
    return tag[tag.rfind("}") + 1 :]


def namespace_of(tag: str) -> str:
    return tag[1 : tag.index("}")] if tag.startswith("{") else ""


@contextmanager
def open_source(source: XmlSource) -> Iterator[BinaryIO]:
    """A readable binary stream for any accepted source. A `str` that starts with '<' (after whitespace) is XML
    text, encoded as UTF-8; any other `str` is a file path."""
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(source))
    elif isinstance(source, str) and source.lstrip().startswith("<"):
        yield io.BytesIO(source.encode("utf-8"))
    elif isinstance(source, str | Path):
        with open(source, "rb") as handle:
            yield handle
    else:
        yield source


PROLOG_PEEK_BYTES = 64 * 1024
_DOCTYPE_REFUSED = (
    "The document has a DOCTYPE declaration; DTDs and entity declarations are refused. "
    "Ask the sender to remove the DOCTYPE."
)


class _PrefixedStream:
    """A read-only stream that first returns the bytes already peeked, then the rest of the source."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)


def _prolog_declares_doctype(head: bytes) -> bool:
    """True when the prolog (before the root element) in `head` holds a DOCTYPE. Looking at the raw bytes
    means libxml2 never sees the DTD, so entity bombs cannot even start."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="ignore")
    else:
        text = head.decode("latin-1")  # markup characters are ASCII in every ASCII-compatible encoding
    position = 0
    while True:
        start = text.find("<", position)
        if start < 0:
            return False
        if text.startswith("<?", start):
            end = text.find("?>", start)
        elif text.startswith("<!--", start):
            end = text.find("-->", start)
        else:
            return text.startswith("<!DOCTYPE", start) or text.startswith("<!doctype", start)
        if end < 0:
            return False
        position = end + 2


def _checked_stream(stream: BinaryIO) -> _PrefixedStream:
    head = stream.read(PROLOG_PEEK_BYTES)
    if _prolog_declares_doctype(head):
        raise UnsafeXml(_DOCTYPE_REFUSED)
    return _PrefixedStream(head, stream)


def _reject_doctype(tree: etree._ElementTree) -> None:
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml(_DOCTYPE_REFUSED)


_LIMIT_MARKERS = ("Resource limit exceeded", "XML_PARSE_HUGE", "Excessive depth", "Maximum entity amplification")


def _syntax_error(error: etree.LxmlError) -> MalformedXml | UnsafeXml:
    text = str(error)
    if any(marker in text for marker in _LIMIT_MARKERS):
        return UnsafeXml(
            f"The document exceeds the parser's safety limits ({text}): text nodes over 10 MB, nesting deeper than "
            "256 levels or runaway expansion are refused. Ask the sender to split or fix the message."
        )
    return MalformedXml(f"The XML is not well-formed ({text}); the message may be truncated or corrupted.")


def parse_document(source: XmlSource) -> etree._Element:
    """Parse a whole, small document (requests, envelopes in tests) safely and return its root element."""
    try:
        with open_source(source) as stream:
            tree = etree.parse(_checked_stream(stream), safe_parser())
    except etree.XMLSyntaxError as error:
        raise _syntax_error(error) from error
    _reject_doctype(tree)
    return tree.getroot()


def root_element_name(source: XmlSource) -> str:
    """Local name of the document's root element, reading only up to its start tag (same safety rules)."""
    try:
        with open_source(source) as stream:
            events = etree.iterparse(_checked_stream(stream), events=("start",), remove_pis=True,
                                     remove_comments=True, **_SAFE_OPTIONS)
            for _event, element in events:
                _reject_doctype(element.getroottree())
                return local_name(element.tag)
    except etree.XMLSyntaxError as error:
        raise _syntax_error(error) from error
    raise MalformedXml("The XML document is empty.")


def safe_iterparse(
    source: XmlSource, tags: Iterable[str] | None = None
) -> Iterator[tuple[str, etree._Element]]:
    """Stream `end` events (optionally only for `tags`, which may use `{*}Name`) and, as the very last event,
    `("root", root_element)` so callers can check the document root even when no tag matched.

    A DOCTYPE in the prolog is refused before parsing starts; as a second line, the parsed document info is
    checked again at the first event, before any element is handed out."""
    tag_filter = list(tags) if tags is not None else None
    try:
        with open_source(source) as stream:
            events = etree.iterparse(
                _checked_stream(stream),
                events=("end",),
                tag=tag_filter,
                remove_pis=True,
                remove_comments=True,
                **_SAFE_OPTIONS,
            )
            checked = False
            for event, element in events:
                if not checked:
                    _reject_doctype(element.getroottree())
                    checked = True
                yield event, element
            root = events.root
            if root is None:
                raise MalformedXml("The XML document is empty.")
            if not checked:
                _reject_doctype(root.getroottree())
            yield "root", root
    except etree.XMLSyntaxError as error:
        raise _syntax_error(error) from error
