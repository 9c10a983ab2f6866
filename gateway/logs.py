"""Logging for `asset-gateway serve`: text or one JSON object per line, each record tagged with its request id."""

from __future__ import annotations

import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

LogFormat = Literal["text", "json"]
# Set by gateway.request_context for the life of one request; every record logged meanwhile carries it.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Attributes every LogRecord has; anything else on a record came through `extra=` and belongs in the JSON line,
# except uvicorn's `color_message` (the message again, with terminal colour codes).
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "color_message"}
)


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None) on every record that passes through the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} request_id={request_id}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One line per record: time, level, logger, message, request_id, any `extra=` fields, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            payload["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            payload["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            payload["stack"] = record.stack_info
        return orjson.dumps(payload, default=repr).decode()


class GatewayHandler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs (so that a second call replaces it instead of doubling lines)."""


def configure_logging(level: str, log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """One handler on the root logger (replacing one installed earlier by this function); returns it.

    Uvicorn's loggers propagate to it too once `serve` passes `log_config=None`.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, GatewayHandler):
            root.removeHandler(handler)
    handler = GatewayHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
