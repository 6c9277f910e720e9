"""Bonawitz et al. secure aggregation (CCS'17) and SecAgg+ (Bell et al., CCS'20), semi-honest
or (``security="malicious"``) against a deviating server, with dropout recovery: one client
and one server, written over a neighbour graph.

``make_aggregator("secagg", spec, scale_bits=16, modulus_bits=None, threshold=None)``: the
complete graph.  ``make_aggregator("secaggplus", spec, dropout_fraction=0.1,
corrupt_fraction=0.05, ...)``: a random Harary graph of degree k = O(log n) derived from the
round's public data (in malicious mode: from the closed identity registration, which the server
cannot grind), with k and the per-neighbourhood threshold from the parameter finder.
The wire protocol is specified in ``protocols/secagg/SPEC.md`` (and the graph, parameters and
packing in ``protocols/secaggplus/SPEC.md``) at the repository root.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedsecure.config import FixedPoint, require
from fedsecure.errors import ConfigurationError
from fedsecure.hazmat import OVERHEAD, SHARE_BYTES
from fedsecure.kernels import packed_size
from fedsecure.messages import ENVELOPE_OVERHEAD_BYTES
from fedsecure.protocols.base import (
    AggregationSpec,
    Aggregator,
    refuse_small_cohort,
    register_protocol,
)
from fedsecure.protocols.identity import IdentityRegistry, StaticRegistry
from fedsecure.protocols.secagg.client import SecAggClient
from fedsecure.protocols.secagg.graph import CompleteGraph, NeighbourGraph
from fedsecure.protocols.secagg.harary import HararyGraph, registry_graph_seed
from fedsecure.protocols.secagg.parameters import (
    GraphParameters,
    find_graph_parameters,
    graph_guarantee,
)
from fedsecure.protocols.secagg.server import SecAggServer
from fedsecure.rng import DEFAULT_RNG, RandomSource

SECURITY_MODES = ("semi-honest", "malicious")


class SecAggAggregator(Aggregator):
    """Makes SecAgg parties for one round.

    ``threshold`` (default ``spec.min_clients``, a strict majority) is the Shamir threshold:
    the fewest clients that must survive every phase.  Below n/2 + 1 a server that lies about
    dropouts could unmask an honest client (Bonawitz et al. §4), so smaller values are refused.

    ``security="semi-honest"`` (default) stops hostile *clients* (one can drop only itself) and
    a tampering network, but not a server that deviates: a server that substitutes its own keys
    in one client's roster, or shows clients different views of who sent shares and who
    survived, can recover an individual input (see docs/threat-model.md).
    ``security="malicious"`` (Bonawitz et al. §6) closes those: every advertisement, share
    ciphertext, receipt and survivor set is signed with the client's long-term Ed25519 identity
    key (``identities``: an :class:`~fedsecure.protocols.identity.IdentityRegistry` or a
    mapping of client ids to public keys, registered in advance; ``identity_keys``: the private
    keys of the clients this process runs), and a consistency round makes each client unmask
    only after t signatures on the survivor set it was shown.  It needs t >= 2n/3 + 1.
    """

    name = "secagg"

    def __init__(self, spec: AggregationSpec, *, scale_bits: int = 16,
                 modulus_bits: int | None = None, threshold: int | None = None,
                 security: str = "semi-honest", identities: IdentityRegistry | None = None,
                 identity_keys: Mapping[int, bytes] | None = None,
                 rng: RandomSource = DEFAULT_RNG):
        super().__init__(spec, rng=rng)
        n = spec.n_clients
        refuse_small_cohort(spec)
        require(security in SECURITY_MODES, "security", security,
                f"must be one of {SECURITY_MODES}")
        self.malicious = security == "malicious"
        self.security = security
        self.fixed_point = FixedPoint(n_clients=n, clip=spec.clip, scale_bits=scale_bits,
                                      max_weight=spec.max_weight, modulus_bits=modulus_bits)
        self.identities, self.identity_keys = self._identities(identities, identity_keys)
        self.graph: NeighbourGraph = self._graph()
        self.threshold = self._threshold(threshold)
        if self.malicious:
            self._check_malicious_threshold()
        self.min_survivors = self._min_survivors()

    def _identities(self, identities, identity_keys):
        if not self.malicious:
            require(identities is None and not identity_keys, "identities", "...",
                    "identity keys are used only with security='malicious'")
            return None, {}
        if isinstance(identities, Mapping):
            identities = StaticRegistry(identities)
        require(isinstance(identities, IdentityRegistry), "identities", identities,
                "security='malicious' needs an IdentityRegistry (or a mapping of client ids to"
                " Ed25519 public keys) registered before the round")
        return identities, dict(identity_keys or {})

    def _check_malicious_threshold(self) -> None:
        """On the complete graph: t >= floor(2n/3) + 1 (Bonawitz et al. §6)."""
        n, t = self.spec.n_clients, self.threshold
        require(t >= 2 * n // 3 + 1, "threshold", t,
                f"security='malicious' needs t >= floor(2n/3) + 1 = {2 * n // 3 + 1} so that a"
                " server cannot gather t signatures on two different survivor sets"
                " (Bonawitz et al. §6)")

    def _graph(self) -> NeighbourGraph:
        return CompleteGraph(self.spec.client_ids)

    def _threshold(self, threshold: int | None) -> int:
        n = self.spec.n_clients
        if threshold is None:
            threshold = self.spec.min_clients
            if self.malicious:
                threshold = max(threshold, 2 * n // 3 + 1)
        require(isinstance(threshold, int) and n // 2 + 1 <= threshold <= n,
                "threshold", threshold, f"must be in [n/2+1, n] = [{n // 2 + 1}, {n}]")
        return threshold

    def _min_survivors(self) -> int:
        """The fewest clients with which the server goes on after a phase."""
        return self.threshold

    def client(self, client_id: int, *, rng: RandomSource | None = None,
               identity_key: bytes | None = None) -> SecAggClient:
        self.check_client_id(client_id)
        if identity_key is None:
            identity_key = self.identity_keys.get(client_id)
        require(identity_key is not None or not self.malicious, "identity_key", None,
                f"client {client_id} needs its Ed25519 identity key in malicious mode")
        return SecAggClient(self, client_id, rng or self.rng, identity_key)

    def server(self, *, rng: RandomSource | None = None) -> SecAggServer:
        return SecAggServer(self)

    def max_message_bytes(self, *, to_server: bool) -> int:
        """From the spec: a client's largest message is its masked input (d + 1 packed words) or
        its shares (one sealed pair per neighbour, two revealed shares per neighbour); the
        server's is the roster or the forwarded shares (one entry per neighbour).  Malicious
        mode adds a 64-byte signature per entry, and the server's survivor signatures and
        forwarded complaint receipts (at most t - 1, each listing at most n clients), and the
        consistency check's survivor set, which lists the whole U3 (all of the cohort)."""
        n, signature = self.graph.degree + 1, (66 if self.malicious else 1)
        sealed = 16 + 34 + 3 + OVERHEAD + 8 + 2 * SHARE_BYTES + signature  # with array headers
        if to_server:
            upload = packed_size(self.spec.vector_length + 1, self.fixed_point.modulus_bits)
            largest = max(upload + 64 + 34, n * sealed + 64, 2 * n * (SHARE_BYTES + 8) + 64,
                          5 * n + 64 + 66 + 34 * 2)
        else:
            largest = max(n * max(sealed, 90 + signature) + 64, 1100)  # 1100: an Abort's reason
            if self.malicious:
                receipts = self.threshold * (5 * n + 16 + 34 * 2 + signature)
                largest = max(largest, n * (8 + signature) + 10 * n + 64, receipts + 5 * n + 64,
                              5 * self.spec.n_clients + 64)
        return ENVELOPE_OVERHEAD_BYTES + largest

    @property
    def quantization_error(self) -> float:
        """Stochastic rounding moves each weighted coordinate by < 1/scale, so the mean is
        within 1/scale of the clipped mean."""
        return self.fixed_point.quantization_error


class SecAggPlusAggregator(SecAggAggregator):
    """SecAgg+ (Bell et al., CCS'20): the same parties on a random Harary graph.

    The degree k and the per-neighbourhood Shamir threshold t come from
    :func:`~fedsecure.protocols.secagg.parameters.find_graph_parameters` for the tolerated
    ``dropout_fraction`` and ``corrupt_fraction`` at ``security_bits`` (σ) and
    ``correctness_bits`` (η); ``degree`` / ``threshold`` override them.  The graph is derived
    from the session, round and client ids, so every party computes the same one.  The server
    goes on while ``spec.min_clients`` (and at least t) clients remain; each client refuses to
    go on when fewer than t of its share holders remain.  :attr:`parameters` reports the
    guarantee reached; it is None when the cohort is too small for a sparse graph (no sparse
    graph meets the targets, or a tolerated fraction of n is below one client) and the
    complete graph of SecAgg is used.

    ``security="malicious"`` (``identities``, ``identity_keys`` as for SecAgg) runs the same
    signed rounds and consistency check, with three changes: the finder uses Bell et al.'s
    bound against a server that lies about dropouts (``adversary="semi-malicious"``: t with
    fewer than 2t - k - 1 corrupt neighbours; a ``threshold`` / ``degree`` override that misses
    ``security_bits`` against it is refused); the graph is derived from the closed identity
    registration (its population and registrar nonce, see :mod:`.harary`), never from the
    session; and a client unmasks only after t of its own share holders signed the same
    survivor set (docs/threat-model.md states what this still assumes).
    """

    name = "secaggplus"

    def __init__(self, spec: AggregationSpec, *, scale_bits: int = 16,
                 modulus_bits: int | None = None, dropout_fraction: float = 0.1,
                 corrupt_fraction: float = 0.05, security_bits: float = 40.0,
                 correctness_bits: float = 20.0, degree: int | None = None,
                 threshold: int | None = None, security: str = "semi-honest",
                 identities: IdentityRegistry | None = None,
                 identity_keys: Mapping[int, bytes] | None = None,
                 rng: RandomSource = DEFAULT_RNG):
        self.adversary = "semi-malicious" if security == "malicious" else "semi-honest"
        self._targets = {"corrupt_fraction": corrupt_fraction,
                         "dropout_fraction": dropout_fraction, "adversary": self.adversary}
        self._security_bits = security_bits
        try:
            self.parameters: GraphParameters | None = find_graph_parameters(
                spec.n_clients, security_bits=security_bits, correctness_bits=correctness_bits,
                **self._targets)
        except ConfigurationError as exc:
            if "no sparse" not in str(exc):
                raise
            self.parameters = None  # too few clients for a sparse graph: the complete one
        n = spec.n_clients
        if min(corrupt_fraction * n if corrupt_fraction else 1,
               dropout_fraction * n if dropout_fraction else 1) < 1:
            self.parameters = None  # the tolerated fractions round to no client at all
        planned = self.parameters.degree if self.parameters is not None else spec.n_clients - 1
        self._degree = planned if degree is None else degree
        super().__init__(spec, scale_bits=scale_bits, modulus_bits=modulus_bits,
                         threshold=threshold, security=security, identities=identities,
                         identity_keys=identity_keys, rng=rng)

    def _graph(self) -> NeighbourGraph:
        if self._degree >= self.spec.n_clients - 1:
            return CompleteGraph(self.spec.client_ids)
        if not self.malicious:
            return HararyGraph(self.spec.client_ids, self._degree, session=self.session,
                               round_number=self.spec.round)
        return HararyGraph(self.spec.client_ids, self._degree, seed=self._registry_seed())

    def _registry_seed(self) -> bytes:
        """Malicious mode: the graph comes from the closed registration only (harary.py), and
        the cohort must be the registered population, so the server cannot pick a session,
        roster or cohort that changes it."""
        registry = self.identities
        population = registry.population()
        require(population is not None and registry.nonce is not None, "identities", registry,
                "malicious SecAgg+ derives its graph from a closed registration: the registry"
                " must list its population and carry the registrar's nonce (StaticRegistry(keys,"
                " nonce=...)); otherwise use protocol 'secagg'")
        require(population == frozenset(self.spec.client_ids), "n_clients", self.spec.n_clients,
                f"malicious SecAgg+ runs on the registered population ({len(population)} clients"
                " with ids 1..n), so that the server cannot choose a cohort to change the graph")
        return registry_graph_seed({c: registry.verify_key(c) for c in population},
                                   registry.nonce)

    def _threshold(self, threshold: int | None) -> int:
        if isinstance(self.graph, CompleteGraph):
            return super()._threshold(threshold)
        holders = self.graph.degree + 1
        if threshold is None:
            threshold = self.parameters.threshold if self.parameters else holders // 2 + 1
        require(isinstance(threshold, int) and 2 <= threshold <= holders, "threshold",
                threshold, f"must be in [2, degree + 1] = [2, {holders}]")
        return threshold

    def _check_malicious_threshold(self) -> None:
        """On a sparse graph: the semi-malicious bound of Bell et al. — corrupt neighbours
        must stay below 2t - k - 1 except with probability 2^-security_bits."""
        if isinstance(self.graph, CompleteGraph):
            return super()._check_malicious_threshold()
        k, t = self.graph.degree, self.threshold
        self.parameters = graph_guarantee(self.spec.n_clients, k, t, **self._targets)
        require(self.parameters.security_bits >= self._security_bits, "threshold", t,
                f"security='malicious' with degree {k} reaches only 2^-"
                f"{self.parameters.security_bits:.1f} of the 2^-{self._security_bits:g} asked:"
                f" a server that lies about dropouts breaks a client with 2t - k - 1 ="
                f" {2 * t - k - 1} corrupt neighbours (Bell et al. §4); raise t")

    def _min_survivors(self) -> int:
        return max(self.threshold, self.spec.min_clients)


register_protocol("secagg", SecAggAggregator)
register_protocol("secaggplus", SecAggPlusAggregator)

__all__ = ["SecAggAggregator", "SecAggPlusAggregator", "SecAggClient", "SecAggServer",
           "CompleteGraph", "HararyGraph", "NeighbourGraph"]
