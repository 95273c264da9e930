"""Errors raised by cim_ingest. Every message is an English sentence that tells an operator what failed and,
where it helps, what to do about it."""

from __future__ import annotations

from dataclasses import dataclass


class CimError(Exception):
    """Base class of every error cim_ingest raises on purpose."""


class MalformedXml(CimError):
    """The bytes are not well-formed XML (syntax error, truncated file, wrong encoding)."""


class UnsafeXml(CimError):
    """The document uses a construct we refuse to process (DOCTYPE, entity declarations)."""


class UnexpectedMessage(CimError):
    """Well-formed XML, but not the message we expect (wrong root, verb, noun or namespace)."""


class InvalidValue(CimError):
    """A field holds a value that cannot be right: non-numeric number, impossible date, timestamp without offset."""


class UnsupportedReadingType(CimError):
    """A ReadingType code that decodes fine but is not an energy quantity the portal loads."""

    def __init__(self, code: str, name: str, reason: str):
        self.code = code
        self.name = name
        self.reason = reason
        super().__init__(f"ReadingType {code} ({name}) is not supported: {reason}.")


class BackendError(CimError):
    """The backend could not be reached or answered with an HTTP or transport failure."""


@dataclass(frozen=True)
class ReplyErrorDetail:
    """One `Reply/Error` of an IEC 61968-100 reply."""

    code: str
    level: str
    reason: str
    details: str


class BackendReplyError(CimError):
    """The backend answered, but said the request failed (Reply/Result FAILED or a FaultMessage)."""

    def __init__(self, result: str, errors: list[ReplyErrorDetail] | tuple[ReplyErrorDetail, ...], context: str = ""):
        self.result = result
        self.errors = list(errors)
        summary = "; ".join(
            f"[{error.level or 'no level'}] {error.code or 'no code'}: {error.reason or 'no reason'}"
            + (f" ({error.details})" if error.details else "")
            for error in self.errors
        )
        where = f"{context}: " if context else ""
        super().__init__(
            f"{where}backend replied {result or 'without a result'}"
            + (f" with errors {summary}." if summary else " without error details; check the backend's logs.")
        )


class UnknownUsagePoints(CimError):
    """Readings name usage points the warehouse has no supply for (master data missing or a wrong mRID)."""

    def __init__(self, usage_points: list[str], readings: int):
        self.usage_points = list(usage_points)
        self.readings = readings
        shown = ", ".join(self.usage_points[:10]) + (" ..." if len(self.usage_points) > 10 else "")
        super().__init__(
            f"{readings} reading(s) name {len(self.usage_points)} usage point(s) with no supply in the warehouse "
            f"({shown}); load the supplies (get UsagePoints) or correct the mRIDs, then ingest the file again."
        )
