import base64
import json
import logging

import pytest

from shared.log import REDACTED, JsonFormatter, RedactingFilter, get_logger, redact

SECRETS = [
    "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "gho_" + "Z" * 36,
    "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "glpat-" + "xYz123AbC456dEf789gH",
    "gloas-" + "0123456789abcdef0123456789abcdef",
    ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode()
             for part in (b'{"alg":"RS256"}', b'{"sub":"user"}', b"signature-value")),
]


@pytest.mark.parametrize("secret", SECRETS)
def test_token_shapes_are_redacted(secret: str) -> None:
    out = redact(f"calling provider with {secret} now")
    assert secret not in out and REDACTED in out


@pytest.mark.parametrize("text", [
    "Authorization: Bearer abcdefghijklmnop1234",
    'refresh_token="r-0123456789abcdef"',
    "access_token=opaque-0123456789&scope=repo",
    '{"client_secret": "s3cr3t-value-123"}',
])
def test_secret_assignments_are_redacted(text: str) -> None:
    out = redact(text)
    assert REDACTED in out
    for fragment in ("abcdefghijklmnop1234", "r-0123456789abcdef", "opaque-0123456789",
                     "s3cr3t-value-123"):
        assert fragment not in out


def test_ordinary_text_is_left_alone() -> None:
    text = "synced 120 pull requests for connection c-42 in 3.2 s"
    assert redact(text) == text


def _format(record: logging.LogRecord) -> str:
    RedactingFilter().filter(record)
    return JsonFormatter().format(record)


def test_json_lines_redact_message_fields_and_exceptions() -> None:
    token = SECRETS[0]
    try:
        raise ValueError(f"provider rejected {token}")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed with %s", (token,),
                                   sys.exc_info())
    record.fields = {"header": f"Bearer {token}", "nested": [{"value": token}]}
    line = _format(record)
    assert token not in line
    entry = json.loads(line)
    assert entry["severity"] == "ERROR" and "exception" in entry


def test_get_logger_installs_the_filter_once(caplog) -> None:
    log = get_logger("keyway.test")
    get_logger("keyway.test")
    assert sum(isinstance(f, RedactingFilter) for f in log.filters) == 1
    with caplog.at_level(logging.INFO):
        log.info("token %s", SECRETS[3])
    assert SECRETS[3] not in caplog.text
