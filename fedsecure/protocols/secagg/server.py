"""SecAgg server: collects, forwards, settles complaints and unmasks; never waits (the driver
owns deadlines).

Theory of operation (Bonawitz et al. CCS'17, Fig. 4, semi-honest server; hardened so that one
bad client can drop only itself — ``protocols/secagg/SPEC.md`` gives the argument):

* ``collect_keys``: AdvertiseKeys -> U1 (a malformed or low-order key drops its sender); send
  every member of U1 the KeyRoster.
* ``collect_shares``: EncryptedShares, one ciphertext per share holder in U1; forward to each
  sender the ciphertexts addressed to it (the server cannot open them).
* ``collect_receipts``: ShareReceipt — a client whose digests of the roster or forwarded
  shares differ from what was sent is dropped (its view was altered in transit).  If nobody
  complained, send MaskingSet (U2) to everyone left.
* ``collect_openings`` (only with complaints): each accused client reveals the ephemeral key of
  each ciphertext it was accused for; the server opens that ciphertext itself.  If it does not
  open to a well-formed share pair, the accused is dropped; if it does, the accuser lied and is
  dropped.  Either way nobody else is affected.  Then MaskingSet (U2) to everyone left.
* ``collect_masked``: MaskedInput -> U3, each added into one running sum as it arrives (memory
  grows with d, not n·d): complaints were settled before anyone masked, so no accepted input
  is ever taken back.  Send UnmaskRequest (U3, U2 minus U3) to every member of U3 — in
  malicious mode first ConsistencyCheck(U3), the whole set, to every member of U3
  (``collect_signatures``), and then each signer's request carries the signatures of its
  share holders.
* ``collect_unmask``: UnmaskShares -> decode each needed secret from all the shares that
  arrived, correcting up to (m - t) / 2 corrupted ones (Berlekamp–Welch; their holders are
  reported and ignored), check it against its public key or commitment, remove the masks and
  decode the sum; a total weight or coordinate outside what U3 can produce aborts the round.

A client that sends something malformed, unexpected or inauthentic is dropped (an event)
and told so with Abort; the round aborts only when fewer than ``threshold`` clients remain.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

import numpy as np

from fedsecure.errors import (
    InsufficientParticipants,
    IntegrityError,
    MalformedMessage,
    ProtocolAborted,
)
from fedsecure.hazmat import agree, check_public_key, public_key_of, shamir
from fedsecure.hazmat.prg import add_masks_into
from fedsecure.kernels import add_packed_into, dequantize
from fedsecure.messages import (
    AddressedCiphertext,
    AdvertiseKeys,
    ConsistencyCheck,
    ConsistencySignature,
    EncryptedShares,
    ForwardedShares,
    KeyRoster,
    MaskedInput,
    MaskingSet,
    OpenRequest,
    RosterEntry,
    ShareOpenings,
    ShareReceipt,
    SignedReceipt,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskShares,
)
from fedsecure.protocols.base import AggregateResult
from fedsecure.protocols.phased import PhasedServer
from fedsecure.protocols.secagg import masking

SUBSET_SEARCH_BUDGET = 2000
"""Most subsets of holders tried when decoding alone cannot correct the corrupted shares."""


class SecAggServer(PhasedServer):
    PHASES = {
        "collect_keys": (AdvertiseKeys, "_check_keys", "_close_keys"),
        "collect_shares": (EncryptedShares, "_check_shares", "_close_shares"),
        "collect_receipts": (ShareReceipt, "_check_receipt", "_close_receipts"),
        "collect_openings": (ShareOpenings, "_check_openings", "_close_openings"),
        "collect_masked": (MaskedInput, "_check_masked", "_close_masked"),
        "collect_signatures": (ConsistencySignature, "_check_consistency", "_close_consistency"),
        "collect_unmask": (UnmaskShares, "_check_unmask", "_close_unmask"),
    }

    def __init__(self, aggregator):
        super().__init__(aggregator)
        self.context = masking.round_context(aggregator.session, aggregator.spec.round)
        self._keys: dict[int, AdvertiseKeys] = {}
        self._roster_digests: dict[int, bytes] = {}
        self._shares: dict[int, dict[int, AddressedCiphertext]] = {}  # sender -> recipient -> item
        self._forwarded: dict[int, tuple[frozenset[int], bytes]] = {}  # client -> (senders, digest)
        self._commitments: dict[int, bytes] = {}
        self._accusations: dict[int, set[int]] = {}  # accused -> accusers
        self._refuted: dict[int, int] = {}  # false accuser -> accused
        self._pending_u2: set[int] = set()  # U2 while complaints are being settled
        self._u2: list[int] = []
        self._digests: dict[int, bytes] = {}  # client -> digest of the message it must echo
        self._sum: np.ndarray | None = None
        self._survivors: list[int] = []
        self._unmask_dropped: list[int] = []

    # ------------------------------------------------------------------ per-message checks
    def _check_keys(self, sender: int, body: AdvertiseKeys) -> AdvertiseKeys:
        self._check_signed(sender, masking.advertisement_message(
            self.context, sender, body.encryption_public_key, body.masking_public_key),
            body.signature)
        for name, key in (("encryption", body.encryption_public_key),
                          ("masking", body.masking_public_key)):
            try:
                check_public_key(key)
            except IntegrityError as exc:
                raise IntegrityError(f"advertised {name} key: {exc}", sender) from None
        return body

    def _check_shares(self, sender: int, body: EncryptedShares) -> EncryptedShares:
        expected = self.agg.graph.neighbours(sender) & self._keys.keys()
        recipients = [item.peer for item in body.shares]
        if len(recipients) != len(expected) or set(recipients) != expected:
            raise MalformedMessage("shares must address each neighbour in U1 exactly once", sender)
        for item in body.shares:
            self._check_signed(sender, masking.ciphertext_message(
                self.context, sender, item.peer, item.ephemeral_public_key, item.ciphertext),
                item.signature)
        return body

    def _check_receipt(self, sender: int, body: ShareReceipt) -> ShareReceipt:
        senders, digest = self._forwarded[sender]
        if body.roster_digest != self._roster_digests[sender]:
            raise IntegrityError("the roster it received differs from the one sent", sender)
        if body.forwarded_digest != digest:
            raise IntegrityError("the shares it received differ from those forwarded", sender)
        if len(set(body.complaints)) != len(body.complaints) or not set(body.complaints) <= senders:
            raise MalformedMessage("complaint about a client that sent it no share", sender)
        self._check_signed(sender, masking.receipt_message(
            self.context, sender, body.complaints, body.roster_digest, body.forwarded_digest),
            body.signature)
        return body

    def _check_openings(self, sender: int, body: ShareOpenings) -> None:
        accusers = [item.accuser for item in body.openings]
        if len(accusers) != len(set(accusers)) or set(accusers) != self._accusations[sender]:
            raise MalformedMessage("openings must answer each accuser exactly once", sender)
        failures = []
        for item in body.openings:
            problem = self._open_disputed(sender, item.accuser, item.ephemeral_private_key)
            if problem is None:
                self._refuted[item.accuser] = sender  # the share opens: that complaint was false
            else:
                failures.append(f"its share for {item.accuser} {problem}")
        if failures:
            raise IntegrityError("; ".join(failures), sender)

    def _open_disputed(self, sender: int, accuser: int, ephemeral_private: bytes) -> str | None:
        """Open the ciphertext ``sender`` sent ``accuser`` with the revealed ephemeral key, as
        the accuser would; None if it opens to a well-formed share pair, else what is wrong."""
        sent = self._shares[sender][accuser]
        if public_key_of(ephemeral_private) != sent.ephemeral_public_key:
            return "was opened with a key that does not match the ephemeral key it sent"
        secret = agree(ephemeral_private, self._keys[accuser].encryption_public_key)
        key = masking.share_key(secret, sender, accuser, self.context)
        try:
            masking.open_share(key, sent.ciphertext, sender, accuser, self.context)
        except (IntegrityError, MalformedMessage) as exc:
            return f"does not open: {exc}"
        return None

    def _check_masked(self, sender: int, body: MaskedInput) -> None:
        fixed = self.agg.fixed_point
        if body.masking_set_digest != self._digests[sender]:
            raise IntegrityError("the masking set it received differs from the one sent", sender)
        try:  # exact length and zero padding checked: every word is in the ring by construction
            add_packed_into(self._sum, body.masked, fixed.modulus_bits)
        except MalformedMessage as exc:
            raise MalformedMessage(f"masked input: {exc}", sender) from None
        # accepted inputs are never taken back (see the module docstring)

    def _check_unmask(self, sender: int, body: UnmaskShares) -> dict:
        if body.request_digest != self._digests[sender]:
            raise IntegrityError("the unmask request it received differs from the one sent",
                                 sender)
        shares = {}
        for kind, items, allowed in (("seed", body.seed_shares, self._survivors),
                                     ("key", body.key_shares, self._unmask_dropped)):
            allowed_owners = set(allowed) & self.agg.graph.share_holders(sender)
            for item in items:
                if item.owner not in allowed_owners or (kind, item.owner) in shares:
                    raise MalformedMessage(f"unrequested {kind} share of {item.owner}", sender)
            rows = shamir.shares_from_bytes_many([item.share for item in items]) if items else ()
            for item, row in zip(items, rows):
                shares[(kind, item.owner)] = row
        return shares

    # ------------------------------------------------------------------ phase closers
    def _close_keys(self, answered: dict) -> None:
        self._keys = answered
        self._require(len(answered), "advertised keys")
        entries = {c: RosterEntry(c, k.encryption_public_key, k.masking_public_key, k.signature)
                   for c, k in answered.items()}
        graph = self.agg.graph
        self._send_views(answered, lambda c: (tuple(sorted(graph.share_holders(c) & entries.keys())),),
                         lambda view: KeyRoster([entries[m] for m in view[0]]),
                         self._roster_digests)
        self._next_phase("collect_shares", answered)

    def _close_shares(self, answered: dict) -> None:
        self._require(len(answered), "sent shares")
        self._commitments = {c: answered[c].seed_commitment for c in answered}
        self._shares = {c: {item.peer: item for item in answered[c].shares} for c in answered}
        forwarded: dict[int, list[AddressedCiphertext]] = defaultdict(list)
        for sender in sorted(answered):
            for item in answered[sender].shares:
                if item.peer in answered:
                    forwarded[item.peer].append(AddressedCiphertext(
                        sender, item.ephemeral_public_key, item.ciphertext, item.signature))
        for client in sorted(answered):
            body = ForwardedShares(forwarded[client])
            senders = frozenset(item.peer for item in body.shares)
            self._forwarded[client] = (senders, masking.view_digest(self.context, body))
            self._send(client, body)
        self._next_phase("collect_receipts", answered)

    def _close_receipts(self, answered: dict) -> None:
        self._require(len(answered), "acknowledged their shares")
        accusations: dict[int, set[int]] = defaultdict(set)
        for accuser, receipt in answered.items():
            for accused in receipt.complaints:
                if accused in answered:  # a complaint about a dropped client settles itself
                    accusations[accused].add(accuser)
        self._accusations = dict(accusations)
        if not accusations:
            self._send_masking_set(answered)
            return
        for accused, accusers in sorted(accusations.items()):
            receipts = [SignedReceipt(a, r.complaints, r.roster_digest, r.forwarded_digest,
                                      r.signature)
                        for a, r in sorted((a, answered[a]) for a in accusers)]
            self._send(accused, OpenRequest(sorted(accusers),
                                            receipts if self.agg.malicious else []))
        self._pending_u2 = set(answered)
        self._next_phase("collect_openings", accusations)

    def _close_openings(self, answered: dict) -> None:
        for accuser, accused in sorted(self._refuted.items()):
            if accuser not in self._dropped:
                self._drop(accuser, f"its complaint about client {accused} was refuted: that"
                                    " share opens correctly",
                           IntegrityError("false complaint", accuser))
        self._send_masking_set(self._pending_u2 - self._dropped)

    def _send_masking_set(self, clients) -> None:
        self._u2 = sorted(set(clients) - self._dropped)
        self._require(len(self._u2), "left after settling complaints")
        u2, graph = set(self._u2), self.agg.graph
        self._send_views(self._u2, lambda c: (tuple(sorted(graph.share_holders(c) & u2)),),
                         lambda view: MaskingSet(list(view[0])), self._digests)
        self._sum = np.zeros(self.agg.spec.vector_length + 1, dtype=self.agg.fixed_point.dtype)
        self._next_phase("collect_masked", self._u2)

    def _close_masked(self, answered: dict) -> None:
        survivors = sorted(set(answered) - self._dropped)
        self._require(len(survivors), "sent masked input")
        self._survivors = survivors
        self._unmask_dropped = sorted(set(self._u2) - set(survivors))
        if not self.agg.malicious:
            self._send_unmask_requests(survivors, {})
            return
        for client in survivors:  # malicious mode: every survivor signs U3 first
            self._send(client, ConsistencyCheck(survivors))
        self._next_phase("collect_signatures", survivors)

    def _check_consistency(self, sender: int, body: ConsistencySignature) -> bytes:
        self._check_signed(sender, masking.survivors_message(self.context, sender,
                                                             self._survivors), body.signature)
        return body.signature

    def _close_consistency(self, answered: dict) -> None:
        self._require(len(answered), "signed the survivor set")
        self._send_unmask_requests(sorted(answered), answered)

    def _send_unmask_requests(self, recipients, signatures: dict[int, bytes]) -> None:
        """Each recipient's view: its share holders in U3, its neighbours that dropped, and (in
        malicious mode) the signatures on U3 of those holders that signed."""
        alive, gone, graph = set(self._survivors), set(self._unmask_dropped), self.agg.graph
        signed = set(signatures)
        self._send_views(recipients, lambda c: (tuple(sorted(graph.share_holders(c) & alive)),
                                                tuple(sorted(graph.neighbours(c) & gone)),
                                                tuple(sorted(graph.share_holders(c) & signed))),
                         lambda view: UnmaskRequest(list(view[0]), list(view[1]), [
                             SurvivorSignature(c, signatures[c]) for c in view[2]]),
                         self._digests)
        self._next_phase("collect_unmask", recipients)

    def _send_views(self, clients, view_of, build, digests: dict[int, bytes]) -> None:
        """Send each client the message ``build(view_of(client))`` — the part of the round's
        state that concerns its neighbourhood — and remember the digest it must echo.  Clients
        with the same view (all of them on the complete graph) share one message."""
        made: dict[tuple, tuple] = {}
        for client in sorted(clients):
            view = view_of(client)
            if view not in made:
                body = build(view)
                made[view] = (body, masking.view_digest(self.context, body))
            body, digests[client] = made[view]
            self._send(client, body)

    def _close_unmask(self, answered: dict) -> None:
        self._require(len(answered), "sent unmasking shares")
        seeds = self._reconstruct("seed", self._survivors, answered)
        keys = self._reconstruct("key", self._unmask_dropped, answered)
        fixed = self.agg.fixed_point
        # the sum (d + 1 words) and its decoding (d + 1 float64) are the largest things held
        decoded = dequantize(self._unmask(seeds, keys), modulus_bits=fixed.modulus_bits,
                             scale=1.0)
        self._check_totals(decoded)
        weighted_sum = decoded[:-1]
        weighted_sum /= fixed.scale  # in place: the server holds no further copy of d values
        self._finish(AggregateResult(
            weighted_sum=weighted_sum,
            total_weight=float(decoded[-1]),
            survivors=tuple(self._survivors),
            dropped=tuple(sorted(set(self.agg.spec.client_ids) - set(self._survivors))),
        ))

    # ------------------------------------------------------------------ unmasking
    def _reconstruct(self, kind: str, owners: list[int], answered: dict) -> dict[int, bytes]:
        """Secrets of ``owners`` decoded from every share that arrived, grouping owners whose
        shares come from the same holders (one decoding each); each secret is checked against
        its public key or commitment, and holders of shares that disagree are reported."""
        t = self.agg.threshold
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for owner in owners:
            holders = tuple(h for h in sorted(answered) if (kind, owner) in answered[h])
            if len(holders) < t:
                raise InsufficientParticipants(f"{kind} shares of client {owner}",
                                               remaining=len(holders), threshold=t)
            groups[holders].append(owner)
        secrets: dict[int, bytes] = {}
        for holders, group in groups.items():
            shares = np.stack([np.stack([answered[h][(kind, o)] for o in group]) for h in holders])
            values, bad = self._decode_group(kind, group, holders, shares)
            for holder in sorted(bad):
                if holder not in self._dropped:
                    self._drop(holder, f"sent {kind} shares that disagree with the other holders'"
                                       " (its input still counts; its shares are ignored)",
                               IntegrityError("corrupted share", holder))
            secrets.update(zip(group, values))
        return secrets

    def _decode_group(self, kind, owners, holders, shares) -> tuple[list[bytes], set[int]]:
        """Decode (correcting up to (m - t) / 2 bad shares); if that does not give secrets
        that pass their checks, try leaving holders out, fewest first, within a budget — so the
        round finishes whenever t good shares of each secret arrived and the search is small."""
        t, m = self.agg.threshold, len(holders)

        def attempt(keep):
            try:
                values, bad = shamir.decode_secrets([holders[i] for i in keep], shares[keep], t)
            except IntegrityError:
                return None
            ok = all(self._secret_checks(kind, o, v) for o, v in zip(owners, values))
            return (values, set(bad)) if ok else None

        found = attempt(list(range(m)))
        if found is not None:
            return found
        budget = SUBSET_SEARCH_BUDGET
        for size in range(1, m - t + 1):
            for left_out in combinations(range(m), size):
                budget -= 1
                if budget < 0:
                    raise ProtocolAborted(f"{kind} shares of clients {owners}: no {t} of the {m}"
                                          f" shares pass the check within {SUBSET_SEARCH_BUDGET}"
                                          " attempts (too many corrupted shares)")
                keep = [i for i in range(m) if i not in left_out]
                found = attempt(keep)
                if found is not None:
                    values, bad = found
                    good = [i for i in keep if holders[i] not in bad]
                    # a left-out holder is to blame only if its shares disagree with the good ones
                    for i in left_out:
                        with_it = attempt(good + [i])
                        if with_it is None or holders[i] in with_it[1]:
                            bad.add(holders[i])
                    return values, bad
        raise ProtocolAborted(f"{kind} shares of clients {owners} do not reconstruct to secrets"
                              " that match their public keys / commitments (corrupted shares)")

    def _secret_checks(self, kind: str, owner: int, secret: bytes) -> bool:
        if kind == "key":
            return public_key_of(secret) == self._keys[owner].masking_public_key
        return masking.seed_commitment(secret, owner, self.context) == self._commitments[owner]

    def _unmask(self, seeds: dict[int, bytes], keys: dict[int, bytes]) -> np.ndarray:
        fixed = self.agg.fixed_point
        total = self._sum
        masks = [(masking.self_mask(seeds[client], client, self.context), -1)
                 for client in self._survivors]
        survivors = set(self._survivors)
        for dropped, key in sorted(keys.items()):
            peers = self.agg.graph.neighbours(dropped) & survivors
            pair_seeds = masking.agreed_secrets(
                key, {peer: self._keys[peer].masking_public_key for peer in peers})
            # undo what each surviving ``peer`` added for the pair (peer, dropped)
            masks += [(masking.pairwise_mask(seed, dropped, peer, self.context),
                       -masking.pairwise_sign(peer, dropped)) for peer, seed in pair_seeds.items()]
        # one pass over the sum, every mask added chunk by chunk, the result reduced mod 2^k
        add_masks_into(total, masks, bits=fixed.modulus_bits)
        self._sum = None
        return total

    def _check_totals(self, decoded: np.ndarray) -> None:
        """What U3 can produce: a total weight in [|U3|, |U3| * max_weight] and coordinates
        within |U3| * max_weight * (clip * 2^scale_bits + 1).  Anything else means a client lied
        about its weight or submitted words outside its range: refused, never returned."""
        fixed, count = self.agg.fixed_point, len(self._survivors)
        low, high = count, count * self.agg.spec.max_weight
        if not low <= decoded[-1] <= high:
            raise ProtocolAborted(f"decoded total weight {decoded[-1]:g} is outside [{low}, {high}]"
                                  f" for {count} survivors: a client sent an out-of-range weight")
        bound = high * (int(np.ceil(fixed.clip * fixed.scale)) + 1)
        coordinates = decoded[:-1]  # the largest magnitude without a temporary |x| of d values
        worst = max(float(coordinates.max(initial=0.0)), -float(coordinates.min(initial=0.0)))
        if worst > bound:
            raise ProtocolAborted(f"decoded coordinate of magnitude {worst:g} exceeds {bound} (what"
                                  f" {count} survivors can sum to): a client sent out-of-range words")

    # ------------------------------------------------------------------ helpers
    def _check_signed(self, sender: int, message: bytes, signature: bytes) -> None:
        """Malicious mode: IntegrityError (so ``sender`` is dropped) unless it signed it."""
        if self.agg.malicious:
            self.agg.identities.check(sender, message, signature, sender)

    def _require(self, count: int, what: str) -> None:
        super()._require(count, what, self.agg.min_survivors)
