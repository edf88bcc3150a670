"""Log lines: plain text or one JSON object per line (DMCODEC_LOG_FORMAT=json), each with the id
of the request it belongs to, and one access line per request with its costs."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

ACCESS = logging.getLogger("dmcodec_service.access")
# The id of the request being handled (set by the middleware), for every log line.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the request being handled, or "-") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", "request_id", ...extra fields, "exception"}."""

    STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        line.update({k: v for k, v in vars(record).items() if k not in self.STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (not when the handler was made)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(level: str, fmt: str) -> None:
    """The root logger (and uvicorn's, which then propagate to it) in the chosen format."""
    handler = StderrHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def log_request(fields: dict[str, Any]) -> None:
    """The one access line of a request: its fields as JSON keys, or key=value in text."""
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    ACCESS.info(text, extra=fields)
