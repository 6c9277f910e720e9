"""Client identities for the malicious-server mode: which Ed25519 key speaks for a client id.

Theory of operation (Bonawitz et al., CCS'17, §6 "active adversary": every client signs its key
advertisement and its view of the survivors with a long-term identity key, registered before
the round through a channel the server does not control).  An :class:`IdentityRegistry` maps
a client id to its verify key; a key that is not registered is an
:class:`~fedsecure.errors.IntegrityError`, so an unsigned or unknown key is always refused.
:class:`StaticRegistry` is a dict (or a JSON file ``{"<client id>": "<hex key>", ...}``); a PKI
implements the same one method.  Private identity keys never leave their owner.

SecAgg+ in malicious mode also needs the registry to be a *closed registration*: the whole
population (:meth:`IdentityRegistry.population`) and a 32-byte ``nonce`` the registrar drew
after the last key was registered (:attr:`IdentityRegistry.nonce`).  The neighbour graph is
derived from those alone (:func:`~fedsecure.protocols.secagg.harary.registry_graph_seed`), so
nothing the server chooses per round (session, roster, round number) can bias it, and no
registrant could grind its key against the nonce.  A registry without them (None) cannot run
malicious SecAgg+.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

from fedsecure.config import require
from fedsecure.errors import ConfigurationError, IntegrityError
from fedsecure.hazmat import generate_signing_key, verify
from fedsecure.rng import DEFAULT_RNG, RandomSource

IDENTITY_KEY_BYTES = 32
NONCE_BYTES = 32


class IdentityRegistry(ABC):
    """Who may speak for a client id."""

    nonce: bytes | None = None
    """The registrar's 32 random bytes, drawn after registration closed; None if it has none."""

    def population(self) -> frozenset[int] | None:
        """Every registered client id, if registration is closed and listable; else None."""
        return None

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
    """Identity keys registered in advance, from a mapping or a JSON file, and optionally the
    registrar's nonce (needed by malicious SecAgg+)."""

    def __init__(self, keys: Mapping[int, bytes], nonce: bytes | None = None):
        keys = dict(keys)
        require(all(isinstance(c, int) and c >= 1 for c in keys), "identities", sorted(keys),
                "must map client ids (integers >= 1) to keys")
        require(all(isinstance(k, bytes) and len(k) == IDENTITY_KEY_BYTES for k in keys.values()),
                "identities", "...", f"keys must be {IDENTITY_KEY_BYTES}-byte Ed25519 public keys")
        require(nonce is None or (isinstance(nonce, bytes) and len(nonce) == NONCE_BYTES),
                "nonce", nonce, f"must be {NONCE_BYTES} random bytes drawn by the registrar")
        self._keys = keys
        self.nonce = nonce

    @classmethod
    def from_file(cls, path: str | Path) -> StaticRegistry:
        """``{"1": "<64 hex digits>", ...}``, or ``{"keys": {...}, "nonce": "<64 hex digits>"}``
        for a closed registration; a malformed file is a ConfigurationError."""
        try:
            raw = json.loads(Path(path).read_text())
            nonce = None
            if "keys" in raw:
                nonce, raw = bytes.fromhex(raw["nonce"]), raw["keys"]
            return cls({int(c): bytes.fromhex(k) for c, k in raw.items()}, nonce)
        except (OSError, ValueError, AttributeError, TypeError, KeyError) as exc:
            raise ConfigurationError(f"identities file {str(path)!r}: {exc}") from None

    def population(self) -> frozenset[int]:
        return frozenset(self._keys)

    def verify_key(self, client: int) -> bytes:
        try:
            return self._keys[client]
        except KeyError:
            raise IntegrityError(f"client {client} has no registered identity key") from None

    @property
    def registered(self) -> dict[int, bytes]:
        """Client id -> public key, for everyone registered (public information)."""
        return dict(self._keys)


def enroll_simulated(client_ids, rng: RandomSource = DEFAULT_RNG
                     ) -> tuple[StaticRegistry, dict[int, bytes]]:
    """A closed registration for a simulation, where one process plays every client: a fresh
    Ed25519 identity key per client id from ``rng``, then the registrar's nonce, drawn after
    the last key.  Returns the registry and the private keys by client id (what
    ``make_aggregator(..., security="malicious", identities=..., identity_keys=...)`` takes).
    In a deployment each client makes its own key and only the public half is registered."""
    keys = {int(c): generate_signing_key(rng) for c in client_ids}
    registry = StaticRegistry({c: k.public for c, k in keys.items()}, nonce=rng.bytes(NONCE_BYTES))
    return registry, {c: k.private for c, k in keys.items()}
