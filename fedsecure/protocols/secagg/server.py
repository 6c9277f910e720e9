"""SecAgg server: collects, forwards and unmasks; never waits (the driver owns deadlines).

Theory of operation (Bonawitz et al. CCS'17, Fig. 4, semi-honest server):

* ``collect_keys``: AdvertiseKeys from each client -> U1; at the deadline (or when all have
  answered) send every member of U1 the KeyRoster.
* ``collect_shares``: EncryptedShares, one ciphertext per share holder in U1 -> U2; forward
  to each member of U2 the ciphertexts addressed to it (the server cannot open them).
* ``collect_masked``: MaskedInput (length d+1: the weighted quantized vector and the weight)
  -> U3; senders named in an authentication complaint are dropped too.  Send UnmaskRequest
  (survivors U3, dropped U2 minus U3) to every member of U3.
* ``collect_unmask``: UnmaskShares -> reconstruct each survivor's self-mask seed and each
  dropped client's masking key from ``threshold`` shares (Lagrange weights computed once per
  set of share holders), check every reconstructed key against its advertised public key,
  remove the masks and decode the sum.  Reconstructed masking keys are checked against the
  advertised public keys and seeds against the clients' commitments: corrupted shares abort
  the round instead of corrupting the aggregate.

A client that sends something malformed, unexpected or inauthentic is dropped (an event)
and told so with Abort; the round aborts only when fewer than ``threshold`` clients remain.
Masked inputs are kept until the masked-input phase closes, because a complaint received
after a client's input can still drop that client.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from fedsecure.errors import (
    InsufficientParticipants,
    IntegrityError,
    MalformedMessage,
    ProtocolAborted,
)
from fedsecure.hazmat import public_key_of, shamir
from fedsecure.kernels import add_into, dequantize, reduce_into
from fedsecure.messages import (
    AddressedCiphertext,
    AdvertiseKeys,
    EncryptedShares,
    ForwardedShares,
    KeyRoster,
    MaskedInput,
    RosterEntry,
    UnmaskRequest,
    UnmaskShares,
)
from fedsecure.protocols.base import AggregateResult
from fedsecure.protocols.phased import PhasedServer
from fedsecure.protocols.secagg import masking


class SecAggServer(PhasedServer):
    PHASES = {
        "collect_keys": (AdvertiseKeys, "_check_keys", "_close_keys"),
        "collect_shares": (EncryptedShares, "_check_shares", "_close_shares"),
        "collect_masked": (MaskedInput, "_check_masked", "_close_masked"),
        "collect_unmask": (UnmaskShares, "_check_unmask", "_close_unmask"),
    }

    def __init__(self, aggregator):
        super().__init__(aggregator)
        self.context = masking.round_context(aggregator.session, aggregator.spec.round)
        self.integer_sum: np.ndarray | None = None
        self._keys: dict[int, AdvertiseKeys] = {}
        self._u2: list[int] = []
        self._commitments: dict[int, bytes] = {}
        self._masked: dict[int, np.ndarray] = {}
        self._complaints: dict[int, set[int]] = defaultdict(set)
        self._survivors: list[int] = []
        self._unmask_dropped: list[int] = []

    # ------------------------------------------------------------------ per-message checks
    def _check_keys(self, sender: int, body: AdvertiseKeys) -> AdvertiseKeys:
        return body

    def _check_shares(self, sender: int, body: EncryptedShares) -> EncryptedShares:
        expected = self.agg.graph.neighbours(sender) & self._keys.keys()
        recipients = [item.peer for item in body.shares]
        if len(recipients) != len(expected) or set(recipients) != expected:
            raise MalformedMessage("shares must address each neighbour in U1 exactly once", sender)
        return body

    def _check_masked(self, sender: int, body: MaskedInput) -> MaskedInput:
        fixed = self.agg.fixed_point
        words = body.masked.unpack(length=self.agg.spec.vector_length + 1, dtype=fixed.dtype,
                                   sender=sender)
        if int(words.max(initial=0)) > fixed.mask:
            raise MalformedMessage("masked input has words outside the ring", sender)
        if not set(body.complaints) <= self.agg.graph.neighbours(sender) & set(self._u2):
            raise MalformedMessage("complaint about a client that sent it no share", sender)
        self._masked[sender] = words
        for accused in body.complaints:
            self._complaints[accused].add(sender)
        return body

    def _check_unmask(self, sender: int, body: UnmaskShares) -> dict:
        shares = {}
        for kind, items, allowed in (("seed", body.seed_shares, self._survivors),
                                     ("key", body.key_shares, self._unmask_dropped)):
            allowed_owners = set(allowed) & self.agg.graph.share_holders(sender)
            for item in items:
                if item.owner not in allowed_owners or (kind, item.owner) in shares:
                    raise MalformedMessage(f"unrequested {kind} share of {item.owner}", sender)
                shares[(kind, item.owner)] = shamir.share_from_bytes(item.share)
        return shares

    # ------------------------------------------------------------------ phase closers
    def _close_keys(self, answered: dict) -> None:
        self._keys = answered
        self._require(len(answered), "advertised keys")
        entries = [RosterEntry(c, k.encryption_public_key, k.masking_public_key)
                   for c, k in sorted(answered.items())]
        for client in sorted(answered):
            self._send(client, KeyRoster(entries))
        self._next_phase("collect_shares", answered)

    def _close_shares(self, answered: dict) -> None:
        self._require(len(answered), "sent shares")
        self._u2 = sorted(answered)
        self._commitments = {c: answered[c].seed_commitment for c in self._u2}
        forwarded: dict[int, list[AddressedCiphertext]] = defaultdict(list)
        for sender in self._u2:
            for item in answered[sender].shares:
                if item.peer in answered:
                    forwarded[item.peer].append(AddressedCiphertext(sender, item.ciphertext))
        for client in self._u2:
            self._send(client, ForwardedShares(forwarded[client]))
        self._next_phase("collect_masked", answered)

    def _close_masked(self, answered: dict) -> None:
        for accused, accusers in sorted(self._complaints.items()):
            if accused in answered and accused not in self._dropped:
                self._drop(accused, f"share authentication failed at clients {sorted(accusers)}",
                           IntegrityError("share failed authentication", accused))
        survivors = sorted(set(answered) - self._dropped)
        self._require(len(survivors), "sent masked input")
        self._survivors = survivors
        self._unmask_dropped = sorted(set(self._u2) - set(survivors))
        for client in survivors:
            self._send(client, UnmaskRequest(survivors, self._unmask_dropped))
        self._next_phase("collect_unmask", dict.fromkeys(survivors))

    def _close_unmask(self, answered: dict) -> None:
        self._require(len(answered), "sent unmasking shares")
        seeds = self._reconstruct("seed", self._survivors, answered)
        keys = self._reconstruct("key", self._unmask_dropped, answered)
        for owner, key in keys.items():
            if public_key_of(key) != self._keys[owner].masking_public_key:
                raise ProtocolAborted(f"reconstructed masking key of client {owner} does not match"
                                      " its public key (corrupted shares)")
        for owner, seed in seeds.items():
            if masking.seed_commitment(seed, owner, self.context) != self._commitments[owner]:
                raise ProtocolAborted(f"reconstructed mask seed of client {owner} does not match"
                                      " its commitment (corrupted shares)")
        self.integer_sum = self._unmask(seeds, keys)
        fixed = self.agg.fixed_point
        decoded = dequantize(self.integer_sum, modulus_bits=fixed.modulus_bits, scale=1.0)
        self._finish(AggregateResult(
            weighted_sum=decoded[:-1] / fixed.scale,
            total_weight=float(decoded[-1]),
            survivors=tuple(self._survivors),
            dropped=tuple(sorted(set(self.agg.spec.client_ids) - set(self._survivors))),
        ))

    # ------------------------------------------------------------------ unmasking
    def _reconstruct(self, kind: str, owners: list[int], answered: dict) -> dict[int, bytes]:
        """Secrets of ``owners`` from the first ``threshold`` shares available for each,
        grouping owners whose shares come from the same holders (one Lagrange set each)."""
        t = self.agg.threshold
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for owner in owners:
            holders = tuple(h for h in sorted(answered) if (kind, owner) in answered[h])[:t]
            if len(holders) < t:
                raise InsufficientParticipants(f"{kind} shares of client {owner}",
                                               remaining=len(holders), threshold=t)
            groups[holders].append(owner)
        secrets: dict[int, bytes] = {}
        for holders, group in groups.items():
            shares = np.stack([np.stack([answered[h][(kind, o)] for o in group]) for h in holders])
            try:
                values = shamir.reconstruct_secrets(list(holders), shares)
            except IntegrityError as exc:
                raise ProtocolAborted(f"{kind} shares do not reconstruct: {exc}") from exc
            secrets.update(zip(group, values))
        return secrets

    def _unmask(self, seeds: dict[int, bytes], keys: dict[int, bytes]) -> np.ndarray:
        fixed = self.agg.fixed_point
        total = np.zeros(self.agg.spec.vector_length + 1, dtype=fixed.dtype)
        for client in self._survivors:
            add_into(total, self._masked[client])
            masking.add_self_mask(total, seeds[client], client, self.context, -1)
        survivors = set(self._survivors)
        for dropped, key in sorted(keys.items()):
            peers = self.agg.graph.neighbours(dropped) & survivors
            seeds = masking.agreed_secrets(
                key, {peer: self._keys[peer].masking_public_key for peer in peers})
            for peer, seed in seeds.items():
                # undo what ``peer`` added for the pair (peer, dropped)
                masking.add_pairwise_mask(total, seed, dropped, peer, self.context,
                                          -masking.pairwise_sign(peer, dropped))
        self._masked.clear()
        reduce_into(total, fixed.modulus_bits)
        return total

    # ------------------------------------------------------------------ helpers
    def _require(self, count: int, what: str) -> None:
        super()._require(count, what, self.agg.threshold)

    def _drop(self, client: int, reason: str, error: Exception | None = None) -> None:
        if self.phase == "collect_masked":
            self._masked.pop(client, None)  # its input will not count
        super()._drop(client, reason, error)
