"""SecAgg client: one round of Bonawitz et al. (CCS'17, Fig. 4, semi-honest), sans-I/O.

Theory of operation (client u, neighbours N(u), threshold t):

0. ``start``: make two X25519 key pairs, (c_sk, c_pk) for encrypting shares and (s_sk, s_pk)
   for pairwise masks; send AdvertiseKeys(c_pk, s_pk).
1. KeyRoster (U1): check it holds our own keys and >= t clients; agree share-encryption keys
   and pairwise mask seeds with every neighbour in U1.  Draw the self-mask seed b_u;
   Shamir-share s_sk and b_u among N(u) ∩ U1 plus ourselves (threshold t); send each neighbour
   v its two shares sealed with AES-GCM under a key agreed from (c_sk_u, c_pk_v), the
   associated data binding session, round, sender and recipient (EncryptedShares).
2. ForwardedShares (U2 = senders): open each ciphertext; one that fails authentication is
   reported as a complaint (the server drops its sender).  Quantize the weighted input
   (stochastic rounding), append the weight, add the self mask PRG(b_u) and, for every
   v in U2 ∩ N(u), +PRG(s_uv) if u < v else -PRG(s_uv); send MaskedInput.
3. UnmaskRequest (U3 survivors, D dropped): refuse unless the lists are disjoint, we are a
   survivor and |U3| >= t — an honest client never reveals both the seed share and the
   key share of one peer.  Send the seed shares of U3 and the key shares of D (UnmaskShares).

Anything not legal in the current phase, or failing a check, aborts this client (an event,
never an exception from ``receive``).
"""

from __future__ import annotations

import struct

import numpy as np

from fedsecure.errors import (
    InsufficientParticipants,
    IntegrityError,
    MalformedMessage,
    UnexpectedMessage,
    UnsafeRequest,
)
from fedsecure.hazmat import generate_keypair, seal, shamir, unseal
from fedsecure.kernels import quantize, reduce_into
from fedsecure.messages import (
    SERVER_ID,
    AddressedCiphertext,
    AdvertiseKeys,
    ArrayPayload,
    EncryptedShares,
    ForwardedShares,
    KeyRoster,
    MaskedInput,
    RevealedShare,
    UnmaskRequest,
    UnmaskShares,
)
from fedsecure.protocols.base import PeerIgnored
from fedsecure.protocols.phased import PhasedClient
from fedsecure.protocols.secagg import masking
from fedsecure.rng import random_uint32

_SHARE_HEADER = struct.Struct("<II")
SEED_BYTES = 32


class SecAggClient(PhasedClient):
    HANDLERS = {
        "advertised": {KeyRoster: "_on_key_roster"},
        "shared": {ForwardedShares: "_on_forwarded_shares"},
        "masked": {UnmaskRequest: "_on_unmask_request"},
    }

    def __init__(self, aggregator, client_id: int, rng):
        super().__init__(aggregator, client_id)
        self.rng = rng
        self.context = masking.round_context(aggregator.session, aggregator.spec.round)
        self._encryption = self._masking = None
        self._roster: dict[int, tuple[bytes, bytes]] = {}
        self._own_shares: tuple[bytes, bytes] | None = None  # our share of (s_sk, b_u)
        self._held: dict[int, tuple[bytes, bytes]] = {}  # peer -> (key share, seed share)
        self._share_keys: dict[int, bytes] = {}  # peer -> AES-GCM key for shares
        self._mask_seeds: dict[int, bytes] = {}  # peer -> X25519(s_sk, s_pk_peer)
        self._u2: frozenset[int] = frozenset()
        self._seed = b""

    # ------------------------------------------------------------------ caller API
    def _begin(self) -> None:
        self._encryption = generate_keypair(self.rng)
        self._masking = generate_keypair(self.rng)
        self._send(AdvertiseKeys(self._encryption.public, self._masking.public))
        self._enter("advertised")

    # ------------------------------------------------------------------ handlers
    def _on_key_roster(self, body: KeyRoster) -> None:
        spec, t = self.agg.spec, self.agg.threshold
        roster = {}
        for entry in body.entries:
            if entry.client not in spec.client_ids or entry.client in roster:
                raise MalformedMessage(f"roster entry for client {entry.client}", SERVER_ID)
            roster[entry.client] = (entry.encryption_public_key, entry.masking_public_key)
        if roster.get(self.party_id) != (self._encryption.public, self._masking.public):
            raise IntegrityError("roster does not carry our own public keys", SERVER_ID)
        if len(roster) < t:
            raise InsufficientParticipants("key roster", remaining=len(roster), threshold=t)
        self._roster = roster
        holders = sorted((self.agg.graph.share_holders(self.party_id)) & roster.keys())
        peers = self.agg.graph.neighbours(self.party_id) & roster.keys()
        self._share_keys = masking.share_keys(
            self._encryption.private, self.party_id, {p: roster[p][0] for p in peers},
            self.context)
        self._mask_seeds = masking.agreed_secrets(self._masking.private,
                                                  {p: roster[p][1] for p in peers})
        self._seed = self.rng.bytes(SEED_BYTES)
        shares = shamir.share_secrets([self._masking.private, self._seed], holders, t, self.rng)
        sealed = []
        for index, holder in enumerate(holders):
            key_share = shamir.share_to_bytes(shares[index, 0])
            seed_share = shamir.share_to_bytes(shares[index, 1])
            if holder == self.party_id:
                self._own_shares = (key_share, seed_share)
                continue
            plaintext = _SHARE_HEADER.pack(self.party_id, holder) + key_share + seed_share
            ad = masking.share_associated_data(self.context, self.party_id, holder)
            sealed.append(AddressedCiphertext(
                holder, seal(self._share_keys[holder], plaintext, ad, self.rng)))
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
        complaints = []
        for item in body.shares:
            try:
                self._held[item.peer] = self._open_share(item.peer, item.ciphertext)
            except (IntegrityError, MalformedMessage) as exc:
                complaints.append(item.peer)
                self._emit(PeerIgnored(item.peer, str(exc), exc))
        self._u2 = frozenset(senders)
        masked = self._masked_input()
        self._send(MaskedInput(ArrayPayload.pack(masked), complaints))
        self._enter("masked")

    def _on_unmask_request(self, body: UnmaskRequest) -> None:
        t = self.agg.threshold
        survivors, dropped = set(body.survivors), set(body.dropped)
        if len(survivors) != len(body.survivors) or len(dropped) != len(body.dropped):
            raise MalformedMessage("repeated client in unmask request", SERVER_ID)
        if survivors & dropped:
            raise UnsafeRequest(
                f"asked for both shares of clients {sorted(survivors & dropped)}", SERVER_ID)
        if self.party_id not in survivors:
            raise UnexpectedMessage("unmask request that does not list us as a survivor", SERVER_ID)
        known = self._u2 | {self.party_id}
        if not (survivors | dropped) <= known:
            raise MalformedMessage(
                f"unmask request names clients {sorted((survivors | dropped) - known)} outside U2",
                SERVER_ID)
        if len(survivors) < t:
            raise UnsafeRequest(f"only {len(survivors)} survivors, threshold is {t}", SERVER_ID)
        held = dict(self._held)
        held[self.party_id] = self._own_shares
        seed_shares = [RevealedShare(c, held[c][1]) for c in sorted(survivors) if c in held]
        key_shares = [RevealedShare(c, held[c][0]) for c in sorted(dropped) if c in held]
        self._send(UnmaskShares(seed_shares, key_shares))
        self._finish(survivors)

    # ------------------------------------------------------------------ helpers
    def _open_share(self, peer: int, ciphertext: bytes) -> tuple[bytes, bytes]:
        ad = masking.share_associated_data(self.context, peer, self.party_id)
        plaintext = unseal(self._share_keys[peer], ciphertext, ad)
        size = shamir.SHARE_BYTES
        if len(plaintext) != _SHARE_HEADER.size + 2 * size:
            raise MalformedMessage("share plaintext of the wrong size", peer)
        if _SHARE_HEADER.unpack_from(plaintext) != (peer, self.party_id):
            raise IntegrityError("share names other parties than its envelope", peer)
        body = plaintext[_SHARE_HEADER.size:]
        for share in (body[:size], body[size:]):
            shamir.share_from_bytes(share)  # validates field elements
        return body[:size], body[size:]

    def _masked_input(self) -> np.ndarray:
        fixed = self.agg.fixed_point
        vector, weight = self._input
        uniform = random_uint32(self.rng, vector.shape[0])
        words = np.empty(vector.shape[0] + 1, dtype=fixed.dtype)
        words[:-1] = quantize(vector, uniform, scale=fixed.scale, clip=fixed.clip, weight=weight,
                              modulus_bits=fixed.modulus_bits, dtype=fixed.dtype)
        words[-1] = weight
        masking.add_self_mask(words, self._seed, self.party_id, self.context, +1)
        for peer in sorted(self._u2):
            masking.add_pairwise_mask(words, self._mask_seeds[peer], self.party_id, peer,
                                      self.context, masking.pairwise_sign(self.party_id, peer))
        reduce_into(words, fixed.modulus_bits)
        return words

    def _forget_secrets(self) -> None:
        self._encryption = self._masking = None
        self._seed = b""
        self._own_shares = None
        self._held.clear()
        self._share_keys.clear()
        self._mask_seeds.clear()
