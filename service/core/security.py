"""API tokens (random, shown once, stored as SHA-256), the failed sign-in limiter and log redaction."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = [
    "TOKEN_PREFIX",
    "new_token",
    "hash_token",
    "token_hint",
    "FailureLimiter",
    "redact",
    "RedactingFilter",
    "install_log_redaction",
]

TOKEN_PREFIX = "sw_"


def new_token() -> str:
    """A fresh token ``sw_<43 url-safe chars>`` (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token. A fast hash is enough because tokens carry 256 random bits."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_hint(token: str) -> str:
    """The first 6 characters of a token and an ellipsis: enough to tell tokens apart, useless to guess one."""
    return token[:6] + "…"


class FailureLimiter:
    """Failed sign-ins per key (the client address) in a sliding window, in this process only.

    ``retry_after(key)`` is None while ``key`` has fewer than ``limit`` failures in the last
    ``window_s`` seconds, else the seconds until the oldest of them leaves the window. Successful
    sign-ins are never counted or delayed. At most ``max_keys`` addresses are remembered (the least
    recently failing are forgotten first), so a flood of addresses cannot exhaust memory. Several API
    processes each count on their own: the effective limit is ``limit × processes``.
    """

    def __init__(
        self, limit: int, window_s: float = 60.0, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"limit must be ≥ 1 and window_s > 0, got limit={limit!r}, window_s={window_s!r}")
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> float | None:
        """Seconds ``key`` must wait before its next sign-in attempt, or None if it may try now."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if times is None or len(times) < self.limit:
                return None
            return max(times[0] + self.window_s - now, 0.001)

    def fail(self, key: str) -> None:
        """Count one failed sign-in for ``key``."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now) or deque()
            times.append(now)
            while len(times) > self.limit:  # older failures beyond the limit change nothing
                times.popleft()
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)


_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_\-]{8,}"), TOKEN_PREFIX + "***"),  # our API tokens
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+"), r"\1 ***"),
    (re.compile(r"(?i)([?&](?:token|access_token|api_key|apikey|key|password|passwd|secret)=)[^&\s\"']*"), r"\1***"),
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@"), r"\1***@"),  # scheme://user:PASSWORD@host
]


def redact(text: str) -> str:
    """``text`` with API tokens, Authorization values, secret query values and URL passwords masked."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets (see :func:`redact`) in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


#: Loggers that print request lines (with query strings) or URLs: uvicorn's, the service's and SQLAlchemy's.
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "service", "sqlalchemy.engine", "alembic")


def install_log_redaction(names: tuple[str, ...] = REDACTED_LOGGERS) -> None:
    """Add one :class:`RedactingFilter` to each named logger (idempotent).

    Logger filters see only records logged on that very logger, so the uvicorn access log, which
    prints each request line with its query string, is covered by name.
    """
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
