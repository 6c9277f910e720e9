"""Plaintext aggregation: the insecure baseline every secure protocol is measured against.

Theory of operation: each client sends weight * vector as float32 (the precision models are
trained in, so byte counts compare fairly with the secure protocols) and its weight in the
clear; the server adds what arrives before the deadline, in float64.  Rounding to float32 costs
at most clip * 2^-24 per coordinate of the mean (:attr:`PlaintextAggregator.quantization_error`).
The server sees every individual update — use it only as a baseline (benchmarks, accuracy
comparisons) or where updates are not sensitive.
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

WIRE_DTYPE = "<f4"
"""Updates travel as little-endian float32."""
FLOAT32_ROUNDING = 2.0**-24
"""float32's unit round-off: the relative error of rounding a float64 to float32."""


class PlaintextClient(PhasedClient):
    HANDLERS: dict = {}  # the server never writes to a plaintext client, except Abort

    def _begin(self) -> None:
        vector, weight = self._take_input()
        weighted = (vector * weight).astype(WIRE_DTYPE)
        self._send(PlainUpdate(weighted_update=ArrayPayload.pack(weighted),
                               weight=float(weight)))
        self._finish(())


class PlaintextServer(PhasedServer):
    PHASES = {"collect_updates": (PlainUpdate, "_check_update", "_close_updates")}

    def _check_update(self, sender: int, body: PlainUpdate) -> tuple[np.ndarray, float]:
        spec = self.agg.spec
        update = body.weighted_update.unpack(length=spec.vector_length, dtype=WIRE_DTYPE,
                                             sender=sender).astype(np.float64)
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
        """A PlainUpdate (d float32 values), or an Abort for a client."""
        return ENVELOPE_OVERHEAD_BYTES + (4 * self.spec.vector_length + 64 if to_server else 1100)

    @property
    def quantization_error(self) -> float:
        """Each client's weighted update w * x (|x| <= clip) is rounded to float32, off by at most
        w * clip * 2^-24; summed and divided by the total weight, the mean is off by at most
        clip * 2^-24 (float64 summation adds only ~1e-16 relative)."""
        return self.spec.clip * FLOAT32_ROUNDING


register_protocol("plaintext", PlaintextAggregator)
