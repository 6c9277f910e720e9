"""Plaintext aggregation: the insecure baseline every secure protocol is measured against.

Theory of operation: each client sends weight * vector and its weight in the clear; the server
adds what arrives before the deadline.  The server sees every individual update — use it only
as a baseline (benchmarks, accuracy comparisons) or where updates are not sensitive.
"""

from __future__ import annotations

import numpy as np

from fedsecure.errors import MalformedMessage
from fedsecure.messages import ENVELOPE_OVERHEAD_BYTES, ArrayPayload, PlainUpdate
from fedsecure.protocols.base import (
    AggregateResult,
    Aggregator,
    register_protocol,
)
from fedsecure.protocols.phased import PhasedClient, PhasedServer


class PlaintextClient(PhasedClient):
    HANDLERS: dict = {}  # the server never writes to a plaintext client, except Abort

    def _begin(self) -> None:
        vector, weight = self._input
        self._send(PlainUpdate(weighted_update=ArrayPayload.pack(vector * weight),
                               weight=float(weight)))
        self._finish(())


class PlaintextServer(PhasedServer):
    PHASES = {"collect_updates": (PlainUpdate, "_check_update", "_close_updates")}

    def _check_update(self, sender: int, body: PlainUpdate) -> tuple[np.ndarray, float]:
        spec = self.agg.spec
        update = body.weighted_update.unpack(length=spec.vector_length, dtype="<f8",
                                             sender=sender)
        if not (1 <= body.weight <= spec.max_weight) or not np.all(np.isfinite(update)):
            raise MalformedMessage("weight or values out of range", sender)
        return update, body.weight

    def _close_updates(self, answered: dict) -> None:
        self._require(len(answered), "sent an update", self.agg.spec.min_clients)
        survivors = tuple(sorted(answered))
        self._finish(AggregateResult(
            weighted_sum=np.sum([answered[c][0] for c in survivors], axis=0),
            total_weight=float(sum(answered[c][1] for c in survivors)),
            survivors=survivors,
            dropped=tuple(sorted(set(self.agg.spec.client_ids) - set(survivors)))))


class PlaintextAggregator(Aggregator):
    name = "plaintext"

    def client(self, client_id: int, *, rng=None) -> PlaintextClient:
        self.check_client_id(client_id)
        return PlaintextClient(self, client_id)

    def server(self, *, rng=None) -> PlaintextServer:
        return PlaintextServer(self)

    def max_message_bytes(self, *, to_server: bool) -> int:
        """A PlainUpdate (d values of at most 8 bytes), or an Abort for a client."""
        return ENVELOPE_OVERHEAD_BYTES + (8 * self.spec.vector_length + 64 if to_server else 1100)


register_protocol("plaintext", PlaintextAggregator)
