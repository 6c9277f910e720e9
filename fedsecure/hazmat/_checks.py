"""Argument checks shared by the hazmat primitives (caller misuse -> ConfigurationError)."""

from __future__ import annotations

from fedsecure.errors import ConfigurationError


def require_key(name: str, value: object, length: int) -> bytes:
    """Return ``value`` if it is ``bytes`` of exactly ``length``; never echo key material."""
    if not isinstance(value, bytes) or len(value) != length:
        seen = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise ConfigurationError(f"{name}: must be {length} bytes, got {seen}")
    return value
