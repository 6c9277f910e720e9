"""Bonawitz et al. secure aggregation (CCS'17), semi-honest, with dropout recovery.

``make_aggregator("secagg", spec, scale_bits=16, modulus_bits=None, threshold=None)``.
The wire protocol is specified in ``protocols/secagg/SPEC.md`` at the repository root.
"""

from __future__ import annotations

import numpy as np

from fedsecure.config import FixedPoint, require
from fedsecure.hazmat import OVERHEAD, SHARE_BYTES
from fedsecure.messages import ENVELOPE_OVERHEAD_BYTES
from fedsecure.protocols.base import (
    AggregationSpec,
    Aggregator,
    refuse_small_cohort,
    register_protocol,
)
from fedsecure.protocols.secagg.client import SecAggClient
from fedsecure.protocols.secagg.graph import CompleteGraph, NeighbourGraph
from fedsecure.protocols.secagg.server import SecAggServer
from fedsecure.rng import DEFAULT_RNG, RandomSource


class SecAggAggregator(Aggregator):
    """Makes SecAgg parties for one round.

    ``threshold`` (default ``spec.min_clients``, a strict majority) is the Shamir threshold:
    the fewest clients that must survive every phase.  Below n/2 + 1 a server that lies about
    dropouts could unmask an honest client (Bonawitz et al. §4), so smaller values are refused.

    Semi-honest server only: this mode stops hostile *clients* (one can drop only itself) and a
    tampering network, but not a server that deviates.  A server that substitutes its own keys
    in one client's roster, or shows clients different views of who sent shares and who
    survived, can recover an individual input (see docs/threat-model.md).
    """

    name = "secagg"

    def __init__(self, spec: AggregationSpec, *, scale_bits: int = 16,
                 modulus_bits: int | None = None, threshold: int | None = None,
                 graph: NeighbourGraph | None = None, rng: RandomSource = DEFAULT_RNG):
        super().__init__(spec, rng=rng)
        self.threshold = spec.min_clients if threshold is None else threshold
        n = spec.n_clients
        require(isinstance(self.threshold, int) and n // 2 + 1 <= self.threshold <= n,
                "threshold", self.threshold, f"must be in [n/2+1, n] = [{n // 2 + 1}, {n}]")
        refuse_small_cohort(spec)
        self.fixed_point = FixedPoint(n_clients=n, clip=spec.clip, scale_bits=scale_bits,
                                      max_weight=spec.max_weight, modulus_bits=modulus_bits)
        self.graph = graph if graph is not None else CompleteGraph(spec.client_ids)

    def client(self, client_id: int, *, rng: RandomSource | None = None) -> SecAggClient:
        self.check_client_id(client_id)
        return SecAggClient(self, client_id, rng or self.rng)

    def server(self, *, rng: RandomSource | None = None) -> SecAggServer:
        return SecAggServer(self)

    def max_message_bytes(self, *, to_server: bool) -> int:
        """From the spec: a client's largest message is its masked input (d + 1 ring words) or
        its shares (one sealed pair per neighbour, two revealed shares per neighbour); the
        server's is the roster or the forwarded shares (one entry per client)."""
        n, word = self.spec.n_clients, np.dtype(self.fixed_point.dtype).itemsize
        sealed = 8 + 34 + 3 + OVERHEAD + 8 + 2 * SHARE_BYTES  # peer, key, ciphertext + headers
        if to_server:
            largest = max(word * (self.spec.vector_length + 1) + 64, n * sealed + 64,
                          2 * n * (SHARE_BYTES + 8) + 64)
        else:
            largest = max(n * max(sealed, 80) + 64, 1100)  # 1100: an Abort's reason
        return ENVELOPE_OVERHEAD_BYTES + largest

    @property
    def quantization_error(self) -> float:
        """Stochastic rounding moves each weighted coordinate by < 1/scale, so the mean is
        within 1/scale of the clipped mean."""
        return self.fixed_point.quantization_error


register_protocol("secagg", SecAggAggregator)

__all__ = ["SecAggAggregator", "SecAggClient", "SecAggServer", "CompleteGraph", "NeighbourGraph"]
