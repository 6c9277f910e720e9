"""CKKS aggregator: relays keys, sums ciphertexts, never holds a secret key.

Theory of operation (key holder h, key model K; see ``protocols/ckks/SPEC.md``):

* ``collect_keys``: CkksAdvertise (an X25519 public key; small-order keys refused, so that one
  client cannot make the key holder's agreements fail) from each client -> roster R; at the
  deadline (or when all answered) send h the CkksKeyRequest(R).
* ``collect_context``: CkksKeyDelivery from h: the public context (refused if it holds the
  secret key or does not match the configured parameters) and one sealed material per member
  of R; forward each client its CkksClientKey (the server cannot open it).
* ``collect_updates``: CkksUpdate from each member of R: the context fingerprint must be ours;
  every ciphertext must deserialize under our context with the expected level, scale and
  number of values; then it is added to the running encrypted sum (streamed: one client's
  ciphertexts in memory at a time).  Clients that never send are simply not in the sum:
  dropout costs nothing.
* ``collect_decryption``: send K.decryptors(h) the encrypted sum and the survivor list; merge
  their shares (K.combine) into sum(w * x) and sum(w).  The total weight must decode to an
  integer in [m, m * max_weight] (m survivors) and every coordinate must lie within
  total weight * clip: a sum corrupted by an ill-formed ciphertext aborts the round rather
  than returning garbage.

A client whose message is unexpected, malformed, inauthentic (bad or missing signature when
signing is configured) or encrypted under another context is dropped (an event) and told so
with Abort.  Once a client's update is in the encrypted sum it cannot be taken out, so later
messages from it are discarded (LateMessage).  The round aborts when fewer than
``min_clients`` updates are summed or when the key holder (the only party that can decrypt)
drops out.
"""

from __future__ import annotations

import numpy as np

from fedsecure.errors import (
    IntegrityError,
    MalformedMessage,
    ProtocolAborted,
    UnsafeRequest,
)
from fedsecure.hazmat import agree
from fedsecure.hazmat.ckks import CiphertextSum, load_context
from fedsecure.messages.ckks import (
    CkksAdvertise,
    CkksClientKey,
    CkksDecryption,
    CkksDecryptRequest,
    CkksKeyDelivery,
    CkksKeyRequest,
    CkksRosterEntry,
    CkksUpdate,
)
from fedsecure.protocols.base import AggregateResult
from fedsecure.protocols.ckks import wire
from fedsecure.protocols.phased import PhasedServer

_KEY_CHECK_PRIVATE = bytes(range(1, 33))  # any scalar: small-order points give all zeros
WEIGHT_TOLERANCE = 0.25  # |decoded total weight - nearest integer| allowed (noise is ~1e-6)


class CkksServer(PhasedServer):
    PHASES = {
        "collect_keys": (CkksAdvertise, "_check_advertise", "_close_keys"),
        "collect_context": (CkksKeyDelivery, "_check_delivery", "_close_context"),
        "collect_updates": (CkksUpdate, "_check_update", "_close_updates"),
        "collect_decryption": (CkksDecryption, "_check_decryption", "_close_decryption"),
    }

    def __init__(self, aggregator):
        super().__init__(aggregator)
        self._needed: set[int] = {aggregator.key_holder}  # parties the round cannot lose
        self._roster: dict[int, bytes] = {}
        self._counted: set[int] = set()  # clients whose update is in the encrypted sum
        self._sum: CiphertextSum | None = None
        self.context = None  # hazmat.ckks.PublicContext, from the key holder

    # ------------------------------------------------------------------ per-message checks
    def _check_advertise(self, sender: int, body: CkksAdvertise) -> bytes:
        try:  # a small-order key would make the key holder's agreement fail: refuse it here
            agree(_KEY_CHECK_PRIVATE, body.encryption_public_key)
        except IntegrityError as exc:
            raise IntegrityError(str(exc), sender) from None
        return body.encryption_public_key

    def _check_delivery(self, sender: int, body: CkksKeyDelivery):
        context = load_context(body.public_context, self.agg.parameters, sender=sender)
        if context.is_private:
            raise UnsafeRequest("the key holder sent the aggregator a secret context", sender)
        sealed = {item.client: item.sealed for item in body.sealed_keys}
        if len(sealed) != len(body.sealed_keys) or sealed.keys() != self._roster.keys():
            raise MalformedMessage("sealed key materials do not match the roster", sender)
        return context, sealed

    def _check_update(self, sender: int, body: CkksUpdate) -> bool:
        if body.context_fingerprint != self.context.fingerprint:
            raise IntegrityError("update encrypted under another CKKS context", sender)
        self._sum.add(body.ciphertexts, sender)
        self._counted.add(sender)
        return True

    def _check_decryption(self, sender: int, body: CkksDecryption) -> np.ndarray:
        share = body.share.unpack(length=self.agg.spec.vector_length + 1, dtype="<f8",
                                  sender=sender)
        if not np.all(np.isfinite(share)):
            raise MalformedMessage("decryption share has non-finite values", sender)
        return share

    # ------------------------------------------------------------------ phase closers
    def _close_keys(self, answered: dict) -> None:
        self._require(len(answered), "advertised keys")
        self._roster = dict(sorted(answered.items()))
        entries = [CkksRosterEntry(c, public) for c, public in self._roster.items()]
        self._send(self.agg.key_holder, CkksKeyRequest(entries))
        self._next_phase("collect_context", {self.agg.key_holder})

    def _close_context(self, answered: dict) -> None:
        holder = self.agg.key_holder
        self.context, sealed = answered[holder]
        self._sum = CiphertextSum(self.context, self.agg.spec.vector_length + 1)
        recipients = [c for c in self._roster if c not in self._dropped]
        for client in recipients:
            self._send(client, CkksClientKey(self._roster[holder], sealed[client]))
        self._next_phase("collect_updates", recipients)

    def _close_updates(self, answered: dict) -> None:
        survivors = sorted(self._counted)
        self._require(len(survivors), "sent an update")
        decryptors = self.agg.key_model.decryptors(self.agg.key_holder, survivors)
        self._needed = set(decryptors)
        lost = self._needed & self._dropped
        if lost:
            raise ProtocolAborted(f"decryptors {sorted(lost)} dropped: nobody can decrypt")
        request = CkksDecryptRequest(self.context.fingerprint, self._sum.serialize(), survivors)
        self._sum = None
        for client in decryptors:
            self._send(client, request)
        self._next_phase("collect_decryption", decryptors)

    def _close_decryption(self, answered: dict) -> None:
        spec = self.agg.spec
        values = self.agg.key_model.combine(answered)
        survivors = tuple(sorted(self._counted))
        m = len(survivors)
        weight = round(float(values[-1]))
        weighted_sum = values[:-1]
        slack = m * self.agg.parameters.error_bound
        if not (abs(values[-1] - weight) <= WEIGHT_TOLERANCE
                and m <= weight <= m * spec.max_weight
                and np.max(np.abs(weighted_sum)) <= weight * spec.clip + slack):
            raise ProtocolAborted(
                "decrypted aggregate out of range (total weight"
                f" {float(values[-1])!r} for {m} survivors): an ill-formed ciphertext reached"
                " the sum or the key holder misbehaved")
        self._finish(AggregateResult(weighted_sum.copy(), float(weight), survivors,
                                     tuple(sorted(self._dropped))))

    # ------------------------------------------------------------------ helpers
    def _authenticate(self, envelope) -> None:
        if self.agg.signing_public_keys is not None:
            wire.verify_envelope(envelope, self.agg.signing_public_keys[envelope.sender])

    def _is_late(self, sender: int) -> bool:
        """Messages from dropped clients, after the end, or from a client that has nothing
        more to say (its update is summed, and no decryption share is pending from it)."""
        if super()._is_late(sender):
            return True
        if self.phase == "collect_decryption" and sender in self._expected:
            return sender in self._answered  # a second decryption share
        return sender in self._counted

    def _require(self, count: int, what: str) -> None:
        super()._require(count, what, self.agg.spec.min_clients)

    def _drop(self, client: int, reason: str, error: Exception | None = None) -> None:
        super()._drop(client, reason, error)
        if client in self._needed:
            self._abort(ProtocolAborted(
                f"key holder / decryptor {client} dropped ({reason}): nobody can decrypt"))

    def _abort(self, error: ProtocolAborted) -> None:
        self._sum = None
        super()._abort(error)
