"""Client identities for the malicious-server mode: which Ed25519 key speaks for a client id.

Theory of operation (Bonawitz et al., CCS'17, §6 "active adversary": every client signs its key
advertisement and its view of the survivors with a long-term identity key, registered before
the round through a channel the server does not control).  An :class:`IdentityRegistry` maps
a client id to its verify key; a key that is not registered is an
:class:`~fedsecure.errors.IntegrityError`, so an unsigned or unknown key is always refused.
:class:`StaticRegistry` is a dict (or a JSON file ``{"<client id>": "<hex key>", ...}``); a PKI
implements the same one method.  Private identity keys never leave their owner.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

from fedsecure.config import require
from fedsecure.errors import ConfigurationError, IntegrityError
from fedsecure.hazmat import verify

IDENTITY_KEY_BYTES = 32


class IdentityRegistry(ABC):
    """Who may speak for a client id."""

    @abstractmethod
    def verify_key(self, client: int) -> bytes:
        """The client's registered Ed25519 public key; IntegrityError if it has none."""

    def check(self, client: int, message: bytes, signature: bytes, sender: int | None) -> None:
        """IntegrityError (naming ``sender``) unless ``client`` signed ``message``."""
        try:
            verify(self.verify_key(client), message, signature)
        except IntegrityError as exc:
            raise IntegrityError(f"signature of client {client}: {exc}", sender) from None


class StaticRegistry(IdentityRegistry):
    """Identity keys registered in advance, from a mapping or a JSON file."""

    def __init__(self, keys: Mapping[int, bytes]):
        keys = dict(keys)
        require(all(isinstance(c, int) and c >= 1 for c in keys), "identities", sorted(keys),
                "must map client ids (integers >= 1) to keys")
        require(all(isinstance(k, bytes) and len(k) == IDENTITY_KEY_BYTES for k in keys.values()),
                "identities", "...", f"keys must be {IDENTITY_KEY_BYTES}-byte Ed25519 public keys")
        self._keys = keys

    @classmethod
    def from_file(cls, path: str | Path) -> StaticRegistry:
        """``{"1": "<64 hex digits>", ...}``; a malformed file is a ConfigurationError."""
        try:
            raw = json.loads(Path(path).read_text())
            return cls({int(c): bytes.fromhex(k) for c, k in raw.items()})
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise ConfigurationError(f"identities file {str(path)!r}: {exc}") from None

    def verify_key(self, client: int) -> bytes:
        try:
            return self._keys[client]
        except KeyError:
            raise IntegrityError(f"client {client} has no registered identity key") from None

    @property
    def registered(self) -> dict[int, bytes]:
        """Client id -> public key, for everyone registered (public information)."""
        return dict(self._keys)
