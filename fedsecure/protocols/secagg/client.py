"""SecAgg client: one round of Bonawitz et al. (CCS'17, Fig. 4), sans-I/O, hardened so that one
bad party can only drop itself.

Theory of operation (client u, neighbours N(u), threshold t; ``protocols/secagg/SPEC.md``):

0. ``start``: make two X25519 key pairs, (c_sk, c_pk) for receiving shares and (s_sk, s_pk)
   for pairwise masks; send AdvertiseKeys(c_pk, s_pk).
1. KeyRoster (U1): check it holds our own keys and >= t clients.  A peer whose key is invalid
   (malformed, low order) is treated as dropped, never as our own failure.  Agree pairwise
   mask seeds with every valid neighbour.  Draw the self-mask seed b_u; Shamir-share s_sk and
   b_u among N(u) ∩ U1 plus ourselves (threshold t); seal each holder v's share pair with
   AES-GCM under a key agreed from a fresh ephemeral key e_uv and c_pk_v (associated data
   binding session, round, sender and recipient); send EncryptedShares with the ephemeral
   public keys and a commitment to b_u.
2. ForwardedShares (U2 candidates): open each ciphertext; those that fail become complaints.
   Send ShareReceipt(complaints, digest(roster), digest(forwarded)) — the digests let the
   server detect a view altered in transit.
2b. OpenRequest (only if accused): reveal e_uv for each accuser v (ShareOpenings), so the
   server can open that one ciphertext itself and decide who lied.  At most t - 1 openings:
   more would hand the server t shares of our own secrets, so we refuse (and drop ourselves).
3. MaskingSet (U2, complaints settled): check it holds us, only clients that sent us shares,
   none we complained about, and >= t clients.  Quantize the weighted input (stochastic
   rounding, its randomness an AES-CTR stream under a fresh OS seed), append the weight, add
   PRG(b_u) and, for every v in U2 ∩ N(u), +PRG(s_uv) if u < v else -PRG(s_uv); send the
   words bit-packed to the ring's width (MaskedInput, with digest(MaskingSet)).
3b. ConsistencyCheck (malicious mode only, U3): check it holds us, lies in the cohort, its
   members among our share holders lie in U2 and are >= t; sign (session, round, U3).
4. UnmaskRequest (U3 survivors, D dropped): in malicious mode first require the survivors to
   be our share holders in the U3 we signed and >= t of them to have signed that same U3.
   Refuse unless the lists are disjoint, we are a survivor, both lie in U2 and |U3| >= t — an
   honest client never reveals both the seed share and the key share of one peer.  Send the
   seed shares of U3 and key shares of D that we hold (UnmaskShares, with
   digest(UnmaskRequest)).

Anything from the server not legal in the current phase, or failing a check, aborts this
client (an event, never an exception from ``receive``); anything from another client is
ignored (an event).
"""

from __future__ import annotations

import numpy as np

from fedsecure.errors import (
    InsufficientParticipants,
    IntegrityError,
    MalformedMessage,
    UnexpectedMessage,
    UnsafeRequest,
)
from fedsecure.hazmat import agree_each, ephemeral_agreements, generate_keypair, seal, shamir, sign
from fedsecure.hazmat.agreement import KeyPair
from fedsecure.hazmat.prg import add_masks_into, chunk_values
from fedsecure.kernels import Quantizer, pack
from fedsecure.messages import (
    SERVER_ID,
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
    RevealedShare,
    ShareOpening,
    ShareOpenings,
    ShareReceipt,
    UnmaskRequest,
    UnmaskShares,
)
from fedsecure.protocols.base import PeerIgnored
from fedsecure.protocols.phased import PhasedClient
from fedsecure.protocols.secagg import masking
from fedsecure.rng import KeystreamRandom

SEED_BYTES = 32


SEMI_HONEST_HANDLERS = {
    "advertised": {KeyRoster: "_on_key_roster"},
    "shared": {ForwardedShares: "_on_forwarded_shares"},
    "receipted": {OpenRequest: "_on_open_request", MaskingSet: "_on_masking_set"},
    "opened": {MaskingSet: "_on_masking_set"},
    "masked": {UnmaskRequest: "_on_unmask_request"},
}
MALICIOUS_HANDLERS = {
    **SEMI_HONEST_HANDLERS,
    "masked": {ConsistencyCheck: "_on_consistency_check"},
    "checked": {UnmaskRequest: "_on_unmask_request"},
}


class SecAggClient(PhasedClient):
    HANDLERS = SEMI_HONEST_HANDLERS
    STATE = {**PhasedClient.STATE,  # what snapshot() keeps (protocols/state.py)
             "identity_key": bytes | None, "_signed_survivors": frozenset[int] | None,
             "_encryption": KeyPair | None, "_masking": KeyPair | None,
             "_roster": dict[int, tuple[bytes, bytes]], "_roster_digest": bytes,
             "_own_shares": tuple[bytes, bytes] | None, "_ephemeral": dict[int, bytes],
             "_held": dict[int, tuple[bytes, bytes]], "_mask_seeds": dict[int, bytes],
             "_senders": frozenset[int], "_complained": frozenset[int], "_u2": frozenset[int],
             "_seed": bytes}

    def __init__(self, aggregator, client_id: int, rng, identity_key: bytes | None = None):
        super().__init__(aggregator, client_id)
        self.rng = rng
        self.identity_key = identity_key
        if aggregator.malicious:
            self.HANDLERS = MALICIOUS_HANDLERS  # one more phase: the consistency check
        self._signed_survivors: frozenset[int] | None = None
        self.context = masking.round_context(aggregator.session, aggregator.spec.round)
        self._encryption = self._masking = None
        self._roster: dict[int, tuple[bytes, bytes]] = {}
        self._roster_digest = b""
        self._own_shares: tuple[bytes, bytes] | None = None  # our share of (s_sk, b_u)
        self._ephemeral: dict[int, bytes] = {}  # holder -> e_uv (opens our ciphertext to it)
        self._held: dict[int, tuple[bytes, bytes]] = {}  # peer -> (key share, seed share)
        self._mask_seeds: dict[int, bytes] = {}  # peer -> X25519(s_sk, s_pk_peer)
        self._senders: frozenset[int] = frozenset()  # who forwarded us a share
        self._complained: frozenset[int] = frozenset()
        self._u2: frozenset[int] = frozenset()
        self._seed = b""

    # ------------------------------------------------------------------ caller API
    def _begin(self) -> None:
        self._encryption = generate_keypair(self.rng)
        self._masking = generate_keypair(self.rng)
        enc, mask = self._encryption.public, self._masking.public
        self._send(AdvertiseKeys(enc, mask, self._sign(
            masking.advertisement_message(self.context, self.party_id, enc, mask))))
        self._enter("advertised")

    # ------------------------------------------------------------------ handlers
    def _on_key_roster(self, body: KeyRoster) -> None:
        t = self.agg.threshold
        roster, holders = {}, self.agg.graph.share_holders(self.party_id)
        for entry in body.entries:
            if entry.client not in holders or entry.client in roster:
                raise MalformedMessage(f"roster entry for client {entry.client}", SERVER_ID)
            roster[entry.client] = (entry.encryption_public_key, entry.masking_public_key)
            if self.agg.malicious:  # a key nobody registered, or a substituted one, is refused
                self.agg.identities.check(entry.client, masking.advertisement_message(
                    self.context, entry.client, *roster[entry.client]), entry.signature, SERVER_ID)
        if roster.get(self.party_id) != (self._encryption.public, self._masking.public):
            raise IntegrityError("roster does not carry our own public keys", SERVER_ID)
        if len(roster) < t:
            raise InsufficientParticipants("key roster of our share holders",
                                           remaining=len(roster), threshold=t)
        self._roster_digest = masking.view_digest(self.context, body)
        peers = sorted(self.agg.graph.neighbours(self.party_id) & roster.keys())
        mask_seeds = agree_each(self._masking.private, [roster[p][1] for p in peers])
        sending = ephemeral_agreements([roster[p][0] for p in peers], self.rng)
        outgoing = {}
        for peer, mask_seed, (ephemeral, share_secret) in zip(peers, mask_seeds, sending):
            if mask_seed is None or share_secret is None:
                self._emit(PeerIgnored(peer, "invalid public key in the roster: treated as"
                                             " dropped", IntegrityError("invalid key", peer)))
                del roster[peer]
                continue
            self._mask_seeds[peer] = mask_seed
            outgoing[peer] = (ephemeral, share_secret)
        self._roster = roster
        holders = sorted(self.agg.graph.share_holders(self.party_id) & roster.keys())
        self._seed = self.rng.bytes(SEED_BYTES)
        shares = shamir.share_secrets([self._masking.private, self._seed], holders, t, self.rng)
        sealed = []
        for index, holder in enumerate(holders):
            key_share = shamir.share_to_bytes(shares[index, 0])
            seed_share = shamir.share_to_bytes(shares[index, 1])
            if holder == self.party_id:
                self._own_shares = (key_share, seed_share)
                continue
            ephemeral, secret = outgoing[holder]
            self._ephemeral[holder] = ephemeral.private
            plaintext = masking.share_plaintext(self.party_id, holder, key_share, seed_share)
            key = masking.share_key(secret, self.party_id, holder, self.context)
            ad = masking.share_associated_data(self.context, self.party_id, holder)
            ciphertext = seal(key, plaintext, ad, self.rng)
            sealed.append(AddressedCiphertext(holder, ephemeral.public, ciphertext, self._sign(
                masking.ciphertext_message(self.context, self.party_id, holder,
                                           ephemeral.public, ciphertext))))
        commitment = masking.seed_commitment(self._seed, self.party_id, self.context)
        self._send(EncryptedShares(sealed, commitment))
        self._enter("shared")

    def _on_forwarded_shares(self, body: ForwardedShares) -> None:
        t = self.agg.threshold
        expected_senders = self.agg.graph.neighbours(self.party_id) & self._roster.keys()
        senders = [item.peer for item in body.shares]
        if len(set(senders)) != len(senders) or not set(senders) <= expected_senders:
            raise MalformedMessage("forwarded shares from unexpected or repeated senders", SERVER_ID)
        if len(senders) + 1 < t:
            raise InsufficientParticipants("forwarded shares", remaining=len(senders) + 1, threshold=t)
        if self.agg.malicious:  # the server cannot alter a ciphertext to provoke a complaint
            for item in body.shares:
                self.agg.identities.check(item.peer, masking.ciphertext_message(
                    self.context, item.peer, self.party_id, item.ephemeral_public_key,
                    item.ciphertext), item.signature, SERVER_ID)
        secrets = agree_each(self._encryption.private,
                             [item.ephemeral_public_key for item in body.shares])
        complaints = []
        for item, secret in zip(body.shares, secrets):
            try:
                if secret is None:
                    raise IntegrityError("invalid ephemeral public key", item.peer)
                key = masking.share_key(secret, item.peer, self.party_id, self.context)
                self._held[item.peer] = masking.open_share(key, item.ciphertext, item.peer,
                                                           self.party_id, self.context)
            except (IntegrityError, MalformedMessage) as exc:
                complaints.append(item.peer)
                self._emit(PeerIgnored(item.peer, str(exc), exc))
        self._senders = frozenset(senders)
        self._complained = frozenset(complaints)
        forwarded = masking.view_digest(self.context, body)
        self._send(ShareReceipt(complaints, self._roster_digest, forwarded, self._sign(
            masking.receipt_message(self.context, self.party_id, complaints,
                                    self._roster_digest, forwarded))))
        self._enter("receipted")

    def _on_open_request(self, body: OpenRequest) -> None:
        accusers = list(body.accusers)
        if len(set(accusers)) != len(accusers) or not set(accusers) <= self._ephemeral.keys():
            raise MalformedMessage("open request names clients we sent no share to", SERVER_ID)
        if len(accusers) >= self.agg.threshold:
            raise UnsafeRequest(f"asked to open {len(accusers)} shares; t = "
                                f"{self.agg.threshold} would reveal our secrets", SERVER_ID)
        if self.agg.malicious:
            self._check_complaints(accusers, body.receipts)
        self._send(ShareOpenings([ShareOpening(v, self._ephemeral[v]) for v in sorted(accusers)]))
        self._enter("opened")

    def _on_masking_set(self, body: MaskingSet) -> None:
        t = self.agg.threshold
        u2 = set(body.clients)
        if len(u2) != len(body.clients) or self.party_id not in u2 \
                or not u2 <= self.agg.graph.share_holders(self.party_id):
            raise MalformedMessage("masking set with repeats, without us or beyond our share"
                                   " holders", SERVER_ID)
        neighbours_in = u2 & self.agg.graph.neighbours(self.party_id)
        if not neighbours_in <= self._senders or neighbours_in & self._complained:
            raise UnexpectedMessage("masking set names a neighbour whose share we do not hold",
                                    SERVER_ID)
        if len(u2) < t:
            raise InsufficientParticipants("masking set", remaining=len(u2), threshold=t)
        self._u2 = frozenset(u2)
        masked = pack(self._masked_input(neighbours_in), self.agg.fixed_point.modulus_bits)
        self._send(MaskedInput(masked.tobytes(), masking.view_digest(self.context, body)))
        self._enter("masked")

    def _on_consistency_check(self, body: ConsistencyCheck) -> None:
        t, holders = self.agg.threshold, self.agg.graph.share_holders(self.party_id)
        survivors = frozenset(body.survivors)
        cohort = self.agg.spec.client_ids
        if len(survivors) != len(body.survivors) or self.party_id not in survivors \
                or not all(c in cohort for c in survivors) or not survivors & holders <= self._u2:
            raise MalformedMessage("survivor set with repeats, without us, outside the cohort"
                                   " or naming share holders outside U2", SERVER_ID)
        if len(survivors & holders) < t:
            raise UnsafeRequest(f"only {len(survivors & holders)} of our share holders survive,"
                                f" threshold is {t}", SERVER_ID)
        self._signed_survivors = survivors
        self._send(ConsistencySignature(self._sign(
            masking.survivors_message(self.context, self.party_id, survivors))))
        self._enter("checked")

    def _check_survivor_signatures(self, body: UnmaskRequest) -> None:
        """Malicious mode: unmask only the survivor set we signed (the whole U3; the request
        names our share holders in it), and only once t of those holders signed that same set
        (on the complete graph: t of U3, so no two honest clients act on different sets)."""
        ours = self._signed_survivors & self.agg.graph.share_holders(self.party_id)
        if set(body.survivors) != ours:
            raise UnsafeRequest("unmask request names other survivors than the set we signed",
                                SERVER_ID)
        signers = [item.client for item in body.signatures]
        if len(set(signers)) != len(signers) or not set(signers) <= ours:
            raise MalformedMessage("survivor signatures from repeated or non-surviving clients"
                                   " or from outside our share holders", SERVER_ID)
        if len(signers) < self.agg.threshold:
            raise UnsafeRequest(f"only {len(signers)} survivors signed the survivor set, threshold"
                                f" is {self.agg.threshold}", SERVER_ID)
        for item in body.signatures:
            self.agg.identities.check(item.client, masking.survivors_message(
                self.context, item.client, self._signed_survivors), item.signature, SERVER_ID)

    def _on_unmask_request(self, body: UnmaskRequest) -> None:
        t = self.agg.threshold
        if self.agg.malicious:
            self._check_survivor_signatures(body)
        survivors, dropped = set(body.survivors), set(body.dropped)
        if len(survivors) != len(body.survivors) or len(dropped) != len(body.dropped):
            raise MalformedMessage("repeated client in unmask request", SERVER_ID)
        if survivors & dropped:
            raise UnsafeRequest(
                f"asked for both shares of clients {sorted(survivors & dropped)}", SERVER_ID)
        if self.party_id not in survivors:
            raise UnexpectedMessage("unmask request that does not list us as a survivor", SERVER_ID)
        if not (survivors | dropped) <= self._u2:
            raise MalformedMessage(
                f"unmask request names clients {sorted((survivors | dropped) - self._u2)}"
                " outside U2", SERVER_ID)
        if len(survivors & self.agg.graph.share_holders(self.party_id)) < t:
            raise UnsafeRequest(f"only {len(survivors)} of our share holders survive, threshold"
                                f" is {t}", SERVER_ID)
        held = dict(self._held)
        held[self.party_id] = self._own_shares
        seed_shares = [RevealedShare(c, held[c][1]) for c in sorted(survivors) if c in held]
        key_shares = [RevealedShare(c, held[c][0]) for c in sorted(dropped) if c in held]
        self._send(UnmaskShares(seed_shares, key_shares, masking.view_digest(self.context, body)))
        self._finish(survivors)

    # ------------------------------------------------------------------ helpers
    def _sign(self, message: bytes) -> bytes:
        """Our identity signature of ``message`` in malicious mode; nothing otherwise."""
        return sign(self.identity_key, message) if self.agg.malicious else b""

    def _check_complaints(self, accusers, receipts) -> None:
        """Malicious mode: open only for complaints the accusers really signed."""
        by_accuser = {r.accuser: r for r in receipts}
        if set(by_accuser) != set(accusers) or len(receipts) != len(accusers):
            raise UnsafeRequest("open request without each accuser's signed receipt", SERVER_ID)
        for accuser in accusers:
            receipt = by_accuser[accuser]
            if self.party_id not in receipt.complaints:
                raise UnsafeRequest(f"client {accuser}'s receipt does not accuse us", SERVER_ID)
            self.agg.identities.check(accuser, masking.receipt_message(
                self.context, accuser, receipt.complaints, receipt.roster_digest,
                receipt.forwarded_digest), receipt.signature, SERVER_ID)

    def _masked_input(self, peers) -> np.ndarray:
        """The quantized input and weight plus every mask, mod 2^k, in one pass over the
        words: chunk by chunk, the input is quantized straight into the chunk (its rounding
        randomness an AES-CTR stream under a fresh seed) and every mask is added while the
        chunk is in cache (``hazmat.prg.add_masks_into``, which reduces mod 2^k)."""
        fixed = self.agg.fixed_point
        vector, weight = self._take_input()
        words = np.empty(vector.shape[0] + 1, dtype=fixed.dtype)
        rounding = KeystreamRandom.seeded_from(self.rng)
        chunk = chunk_values(fixed.dtype, fixed.modulus_bits)
        scratch = bytearray(4 * chunk + 15)  # 15: OpenSSL's spare block
        uniform = np.frombuffer(scratch, dtype="<u4", count=chunk)
        quantizer = Quantizer(scale=fixed.scale, clip=fixed.clip, weight=weight,
                              modulus_bits=fixed.modulus_bits, dtype=fixed.dtype)

        def quantize_chunk(start: int, part: np.ndarray) -> None:
            values = vector[start:start + len(part)]  # the last chunk also holds the weight
            count = len(values)
            rounding.write_into(scratch, 4 * count)
            quantizer(values, uniform[:count], part[:count])
            part[count:] = weight

        masks = [(masking.self_mask(self._seed, self.party_id, self.context), +1)]
        masks += [(masking.pairwise_mask(self._mask_seeds[peer], self.party_id, peer, self.context),
                   masking.pairwise_sign(self.party_id, peer)) for peer in sorted(peers)]
        # each mask value drawn in the ring's width, the words left reduced mod 2^k
        add_masks_into(words, masks, prepare=quantize_chunk, bits=fixed.modulus_bits)
        return words

    def _forget_secrets(self) -> None:
        self._encryption = self._masking = None
        self.identity_key = None
        self._seed = b""
        self._own_shares = None
        self._ephemeral.clear()
        self._held.clear()
        self._mask_seeds.clear()
