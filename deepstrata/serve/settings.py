"""The server's limits and options: one frozen dataclass, validated once at the boundary.

Every limit is a defence with a status code a client can act on: a body larger than
``max_body_bytes`` (413), more than ``max_records`` records (413), more than
``max_concurrency`` requests at once (503 at once, with ``Retry-After``), a request
slower than ``timeout`` seconds (504), image and audio files that would decode to more
than ``decode_budget`` times what the model takes of them (422), a request line and
headers longer than ``max_header_bytes`` (431). A connection has ``header_timeout``
seconds to send each request's line and headers and stays open ``keep_alive`` seconds
between requests. This module imports nothing heavy: the CLI reads its defaults for
``--help``.

>>> ServeSettings().max_body_bytes
8388608
>>> ServeSettings(timeout=0).validate()
Traceback (most recent call last):
...
deepstrata.errors.ConfigError: --timeout: expected a number of seconds above 0, got 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from deepstrata.errors import ConfigError

TOKEN_ENV = "DEEPSTRATA_SERVE_TOKEN"
MIN_TOKEN_LENGTH = 16  # a bearer token shorter than this is guessable


def _setting(default, help: str):
    """A limit with the help its ``deepstrata serve`` flag shows (the flag is made from it)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ServeSettings:
    """Limits of one server. ``token``: the bearer token /predict, /schema, /metrics and
    /openapi.json require (None: no authentication; /livez and /readyz are always open)."""

    max_body_bytes: int = _setting(8 * 1024 * 1024, "Largest request body, counted as read (413).")
    max_records: int = _setting(1024, "Most records in one request (413).")
    max_concurrency: int = _setting(
        64, "Requests answered at once (health probes excepted); more get 503 at once."
    )
    timeout: float = _setting(10.0, "Seconds a request may take, arrival to answer (504).")
    max_batch_rows: int = _setting(256, "Rows of concurrent requests run as one forward pass.")
    batch_wait_ms: float = _setting(
        2.0, "Milliseconds a batch waits for requests already arriving."
    )
    max_file_bytes: int = _setting(4 * 1024 * 1024, "Largest image or audio field, decoded (422).")
    max_text_chars: int = _setting(100_000, "Longest text field, in characters (422).")
    decode_budget: float = _setting(
        256.0,
        "Pixels (audio: samples) a request's image and audio fields may decode to, as a "
        "multiple of what the model takes of each (image size x size; seconds x sample rate), "
        "read from the files' headers before decoding (422).",
    )
    max_header_bytes: int = _setting(16 * 1024, "Longest request line and headers (431).")
    header_timeout: float = _setting(
        10.0,
        "Seconds a connection has to send a request's line and headers, from its opening or "
        "its next request's first byte; then it is closed (408 if it sent part of one).",
    )
    keep_alive: float = _setting(5.0, "Seconds an idle connection stays open between requests.")
    token: str | None = None
    graceful_timeout: float = _setting(
        30.0, "Seconds in-flight requests get to finish after SIGTERM."
    )
    drain_delay: float = _setting(
        0.0,
        "Seconds between SIGTERM (readiness turns 503) and closing the port, for a load "
        "balancer to notice.",
    )

    output: str = _setting(
        "probabilities",
        "What /predict tells of each class: probabilities | rounded (to one decimal) | "
        "labels (the predictions alone; /explain is not served). Less leaves a copier "
        "less (deepstrata steal).",
    )
    rate_limit: float = _setting(
        0.0,
        "Requests a minute per bearer token (without one: per client address), a minute's "
        "worth at once; more get 429 with Retry-After. 0: no limit.",
    )

    def validate(self) -> ServeSettings:
        """Raise ConfigError naming the flag of the first invalid value; returns self."""
        positive_ints = ("max_body_bytes", "max_records", "max_concurrency", "max_batch_rows")
        for name in (*positive_ints, "max_file_bytes", "max_text_chars", "max_header_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"expected a whole number of at least 1, got {value!r}", option=flag(name)
                )
        for name, unit, zero_allowed in (
            ("timeout", "seconds", False),
            ("batch_wait_ms", "milliseconds", True),
            ("decode_budget", "", False),
            ("header_timeout", "seconds", False),
            ("keep_alive", "seconds", True),
            ("graceful_timeout", "seconds", True),
            ("drain_delay", "seconds", True),
            ("rate_limit", "requests a minute", True),
        ):
            value = getattr(self, name)
            valid = isinstance(value, int | float) and math.isfinite(value)
            if not valid or value < 0 or (value == 0 and not zero_allowed):
                what = "of at least 0" if zero_allowed else "above 0"
                number = f"a number of {unit}" if unit else "a number"
                raise ConfigError(f"expected {number} {what}, got {value!r}", option=flag(name))
        from deepstrata.attack.output import check_policy  # numpy: not at --help time

        check_policy(self.output)
        if self.token is not None and self.token != self.token.strip():
            raise ConfigError(
                "the token starts or ends with whitespace, which no Authorization header can "
                "carry (its value is stripped); remove it",
                option="--token",
            )
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"a token needs at least {MIN_TOKEN_LENGTH} characters, got {len(self.token)} "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                option="--token",
            )
        return self

    def public(self) -> dict:
        """The limits as /schema shows them (never the token)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "token"}


def flag(name: str) -> str:
    """The CLI flag of a setting: ``max_body_bytes`` -> ``--max-body-bytes``."""
    return "--" + name.replace("_", "-")
