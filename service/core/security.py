"""API tokens: random, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["TOKEN_PREFIX", "new_token", "hash_token"]

TOKEN_PREFIX = "sw_"


def new_token() -> str:
    """A fresh token ``sw_<43 url-safe chars>`` (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token. A fast hash is enough because tokens carry 256 random bits."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
