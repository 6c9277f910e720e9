"""The SecAgg+ neighbour graph: a random Harary graph derived from public round data.

Theory of operation (Bell et al., CCS'20, Section 4: the protocol runs on a k-regular graph;
a random Harary graph H(n, k) gives each client k = O(log n) neighbours with the guarantees of
:mod:`.parameters`).  The n clients are placed on a ring in a pseudorandom order and each is
joined to the k/2 nearest clients on either side, so the graph is k-regular and symmetric
(u is v's neighbour iff v is u's) by construction.

Every party must derive the *same* graph without talking, so the order is a public function of
the round (see protocols/secaggplus/SPEC.md, "Graph derivation"):

- ``seed = SHA-256("fedsecure/secaggplus/v1/harary-graph" || uint32_le(len(session)) || session
  || uint64_le(round) || uint32_le(n) || uint32_le(c_1) || ... || uint32_le(c_n))``, client ids
  ascending;
- ``w_i``: the i-th little-endian uint64 word of the mask PRG ``PRG(seed, "harary-graph")``
  (AES-256-CTR, :mod:`fedsecure.hazmat.prg`), one per client in ascending-id order;
- the ring lists the clients by ascending ``(w_i, c_i)``.

Sorting by 64-bit keys is a uniformly random permutation unless two keys collide (probability
below n^2 / 2^65, 2.7e-8 at n = 10^6), where the id breaks the tie.  The degree is not in the
seed: graphs of different degree on the same round are nested.  Memory is O(n) (two integer
arrays) and ``neighbours`` is O(k + log n), so n = 10^6 is cheap.  The seed must not be chosen
by an adversary after it knows which clients it corrupts (the semi-honest model of the paper):
a server that could pick the session freely could grind for a favourable ring.

Malicious mode therefore takes the seed from the closed identity registry instead
(:func:`registry_graph_seed`): ``SHA-256("fedsecure/secaggplus/v1/registry-graph" ||
nonce || uint32_le(n) || uint32_le(c_1) || key_1 || ... || uint32_le(c_n) || key_n)``, the
registrar's 32-byte nonce (drawn after the last key was registered) and every registered
client's 32-byte identity key in ascending-id order.  No session, round or roster enters it,
so the server has nothing to grind, and every client derives the graph itself.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable, Mapping

import numpy as np

from fedsecure.errors import ConfigurationError
from fedsecure.hazmat.prg import expand
from fedsecure.protocols.secagg.graph import NeighbourGraph

DOMAIN = b"fedsecure/secaggplus/v1/harary-graph"
REGISTRY_DOMAIN = b"fedsecure/secaggplus/v1/registry-graph"
PRG_CONTEXT = b"harary-graph"
MAX_CLIENT_ID = 2**32 - 1


def graph_seed(clients: Iterable[int], *, session: bytes, round_number: int) -> bytes:
    """The 32-byte seed of one round's ring (public: every party computes it)."""
    return _seed(_client_ids(clients), session, round_number)


def registry_graph_seed(keys: Mapping[int, bytes], nonce: bytes) -> bytes:
    """The 32-byte seed of the malicious-mode ring: the whole registered population ``keys``
    (client id -> 32-byte identity key) and the registrar's 32-byte ``nonce``."""
    ids = _client_ids(keys)
    if not isinstance(nonce, bytes) or len(nonce) != 32:
        raise ConfigurationError("nonce: must be the registrar's 32 bytes")
    if any(not isinstance(k, bytes) or len(k) != 32 for k in keys.values()):
        raise ConfigurationError("keys: identity keys must be 32 bytes")
    return hashlib.sha256(REGISTRY_DOMAIN + nonce + len(ids).to_bytes(4, "little") + b"".join(
        int(c).to_bytes(4, "little") + keys[int(c)] for c in ids)).digest()


def derive_ring(clients: Iterable[int], *, session: bytes, round_number: int) -> np.ndarray:
    """The clients in ring order (an int64 array) for one round; see the module docstring."""
    ids = _client_ids(clients)
    return ids[_ring_order(ids, _seed(ids, session, round_number))]


class HararyGraph(NeighbourGraph):
    """H(n, k) on the ring of :func:`derive_ring`: each client's k/2 ring neighbours per side.
    The ring comes from (``session``, ``round_number``), or from an explicit 32-byte ``seed``
    (malicious mode: :func:`registry_graph_seed`)."""

    def __init__(self, clients: Iterable[int], degree: int, *, session: bytes | None = None,
                 round_number: int | None = None, seed: bytes | None = None):
        self._sorted_ids = _client_ids(clients)
        n = len(self._sorted_ids)
        self.degree = _integer("degree", degree, 2, n - 1)
        if self.degree % 2:
            raise ConfigurationError(f"degree={degree!r}: must be even")
        if (seed is None) == (session is None and round_number is None):
            raise ConfigurationError("give either session and round_number, or seed")
        if seed is None:
            seed = _seed(self._sorted_ids, session, round_number)
        elif not isinstance(seed, bytes) or len(seed) != 32:
            raise ConfigurationError("seed: must be 32 bytes")
        self.seed = seed
        order = _ring_order(self._sorted_ids, seed)
        self.ring = self._sorted_ids[order]
        self._position = np.empty(n, dtype=np.int64)  # ring position of the r-th smallest id
        self._position[order] = np.arange(n)
        half = self.degree // 2
        self._offsets = np.concatenate([np.arange(-half, 0), np.arange(1, half + 1)])

    @property
    def n_clients(self) -> int:
        return len(self.ring)

    def position(self, client: int) -> int:
        """Where ``client`` sits on the ring (0..n-1); ConfigurationError if it is not a member."""
        rank = int(np.searchsorted(self._sorted_ids, client))
        if rank == len(self._sorted_ids) or self._sorted_ids[rank] != client:
            raise ConfigurationError(f"client={client!r}: not a member of this graph")
        return int(self._position[rank])

    def neighbours(self, client: int) -> frozenset[int]:
        around = (self.position(client) + self._offsets) % len(self.ring)
        return frozenset(self.ring[around].tolist())


def _ring_order(ids: np.ndarray, seed: bytes) -> np.ndarray:
    """Indices into the ascending ``ids`` in ring order: ascending (key, id)."""
    keys = expand(seed, PRG_CONTEXT, len(ids), "<u8")
    order = np.argsort(keys)
    ordered = keys[order]
    if np.any(ordered[1:] == ordered[:-1]):  # a key collision (< n^2 / 2^65): the id decides
        order = np.lexsort((ids, keys))
    return order


def _seed(ids: np.ndarray, session: bytes, round_number: int) -> bytes:
    if not isinstance(session, bytes):
        raise ConfigurationError(f"session={session!r}: must be bytes")
    round_number = _integer("round_number", round_number, 0, 2**64 - 1)
    return hashlib.sha256(
        DOMAIN + len(session).to_bytes(4, "little") + session
        + round_number.to_bytes(8, "little") + len(ids).to_bytes(4, "little")
        + ids.astype("<u4").tobytes()).digest()


def _client_ids(clients: Iterable[int]) -> np.ndarray:
    """The ids as a sorted int64 array, checked: integers in [0, 2^32 - 1], distinct, >= 3."""
    if isinstance(clients, range):
        clients = np.arange(clients.start, clients.stop, clients.step)
    ids = np.array(clients if isinstance(clients, np.ndarray) else list(clients))
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ConfigurationError("clients: must be a flat collection of integer ids")
    if len(ids) < 3:
        raise ConfigurationError(f"clients: a Harary graph needs at least 3, got {len(ids)}")
    if ids.min() < 0 or ids.max() > MAX_CLIENT_ID:
        raise ConfigurationError(f"clients: ids must be in [0, {MAX_CLIENT_ID}]")
    ids = np.sort(ids.astype(np.int64))
    if np.any(ids[1:] == ids[:-1]):
        raise ConfigurationError("clients: ids must be distinct")
    return ids


def _integer(name: str, value, low: int, high: int) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or not low <= number <= high:
        raise ConfigurationError(f"{name}={value!r}: must be an integer in [{low}, {high}]")
    return number
