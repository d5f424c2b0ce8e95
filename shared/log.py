"""Structured JSON logs on stdout (what Cloud Logging reads), with a redacting filter.

Use :func:`get_logger` and log stable event keys with fields::

    log = get_logger(__name__)
    log.info("vault.token_released", extra={"fields": {"connection": cid, "purpose": "fetch"}})

:class:`RedactingFilter` is the second line of defence: anything that looks like a token or a
secret is replaced by ``[REDACTED]`` in the message, the fields and exception text, even if a
caller made a mistake. The first line of defence is never passing secrets to a logger.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

REDACTED = "[REDACTED]"

# Token shapes of the providers keyway talks to, JWTs, bearer headers, PEM blocks, and any
# key=value pair whose key names a secret.
_TOKEN_PATTERNS = [
    re.compile(r"\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{16,}\b"),
    re.compile(r"\bglpat-[A-Za-z0-9_\-]{16,}\b"),
    re.compile(r"\bgl(?:oas|rt|ptt|ft|cbt|dt|imt|agent)-[A-Za-z0-9_\-]{16,}\b"),
    re.compile(r"\bATCTT[A-Za-z0-9_\-=]{16,}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{12,}=*"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(
        r"(?i)\b((?:access|refresh|id)?_?token|client_secret|secret|password|api_key|code)"
        r"([\"']?\s*[:=]\s*[\"']?)([^\s\"'&,}]{6,})"
    ),
]


def redact(text: str) -> str:
    for pattern in _TOKEN_PATTERNS:
        if pattern.groups >= 3:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if fields:
            record.fields = _redact_value(fields)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, sort_keys=True)


_configured = False


def configure(level: str = "INFO") -> None:
    """Install the JSON handler with the redacting filter on the root logger (idempotent)."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level)
    if _configured:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    _configured = True


def get_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
