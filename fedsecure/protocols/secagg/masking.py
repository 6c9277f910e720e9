"""Mask derivation shared by the SecAgg client (adds masks) and server (removes them).

Every mask is AES-256-CTR keystream (``hazmat.prg.MaskPRG``) keyed through HKDF by a full
32-byte secret and a context that binds the protocol, session, round and parties, so no two
masks of different rounds, sessions or pairs share a keystream.  A mask of the ring Z_{2^k}
reads each value from ``hazmat.prg.draw_bytes(k)`` keystream bytes (5 or 6 for k in 33..48, else
the whole 4- or 8-byte word), so client and server pass the ring's modulus bits:

* self mask of u:       seed b_u (32 random bytes),        context "self"     | session | round | u
* pairwise mask of u,v: seed X25519(s_sk_u, s_pk_v),        context "pairwise" | session | round | min | max
  client u adds it when u < v and subtracts it when u > v, so the pair cancels in the sum.
* share encryption u->v: key HKDF(X25519(e_uv, c_pk_v)),     context "shares"   | session | round | u | v
  where e_uv is a fresh ephemeral key of u for this one recipient (so u can open exactly this
  ciphertext to settle a complaint), with associated data binding session, round, sender and
  recipient.
* view digests: SHA-256 of a server message's encoding, echoed by the client that acted on it.
"""

from __future__ import annotations

import hashlib
import struct

import msgspec
import numpy as np

from fedsecure.errors import IntegrityError, MalformedMessage
from fedsecure.hazmat import agree_many, derive_key, shamir, unseal
from fedsecure.hazmat.prg import MaskPRG

_U32 = struct.Struct("<I")
_SHARE_HEADER = struct.Struct("<II")


def round_context(session: bytes, round_number: int) -> bytes:
    return session + struct.pack("<Q", round_number)


def _pair(u: int, v: int) -> bytes:
    return struct.pack("<II", min(u, v), max(u, v))


def pairwise_sign(own: int, peer: int) -> int:
    """+1 if ``own`` adds the (own, peer) mask, -1 if it subtracts it."""
    return 1 if own < peer else -1


def self_mask(seed: bytes, owner: int, context: bytes) -> MaskPRG:
    """The PRG of ``owner``'s self mask."""
    return MaskPRG(seed, b"self" + context + _U32.pack(owner))


def pairwise_mask(seed: bytes, own: int, peer: int, context: bytes) -> MaskPRG:
    """The PRG of the (own, peer) pairwise mask (the same for both ends)."""
    return MaskPRG(seed, b"pairwise" + context + _pair(own, peer))


def add_self_mask(vector: np.ndarray, seed: bytes, owner: int, context: bytes, sign: int,
                  bits: int) -> None:
    """Add ``sign`` times ``owner``'s self mask of the ``bits``-bit ring into ``vector`` (in
    place, mod 2^bits)."""
    self_mask(seed, owner, context).add_into(vector, sign, bits)


def add_pairwise_mask(vector: np.ndarray, seed: bytes, own: int, peer: int, context: bytes,
                      sign: int, bits: int) -> None:
    """Add ``sign`` times the (own, peer) pairwise mask of the ``bits``-bit ring into
    ``vector`` (in place, mod 2^bits)."""
    pairwise_mask(seed, own, peer, context).add_into(vector, sign, bits)


def agreed_secrets(private: bytes, peer_publics: dict[int, bytes]) -> dict[int, bytes]:
    """X25519 secrets with each peer (the private key is loaded once for all of them); every
    key must be valid (the server checked them when they were advertised)."""
    peers = sorted(peer_publics)
    return dict(zip(peers, agree_many(private, [peer_publics[p] for p in peers])))


def share_key(secret: bytes, sender: int, recipient: int, context: bytes) -> bytes:
    """AES-GCM key of the one share ciphertext ``sender`` -> ``recipient``, from the agreement
    of the sender's ephemeral key for this recipient with the recipient's encryption key."""
    return derive_key(secret, purpose="secagg-share-encryption",
                      context=context + struct.pack("<II", sender, recipient))


def share_plaintext(sender: int, recipient: int, key_share: bytes, seed_share: bytes) -> bytes:
    return _SHARE_HEADER.pack(sender, recipient) + key_share + seed_share


def open_share(key: bytes, ciphertext: bytes, sender: int, recipient: int,
               context: bytes) -> tuple[bytes, bytes]:
    """The (key share, seed share) sealed ``sender`` -> ``recipient``; IntegrityError if it
    does not authenticate or names other parties, MalformedMessage if its content is not two
    valid shares.  The recipient runs it, and the server when it settles a complaint."""
    plaintext = unseal(key, ciphertext, share_associated_data(context, sender, recipient))
    size = shamir.SHARE_BYTES
    if len(plaintext) != _SHARE_HEADER.size + 2 * size:
        raise MalformedMessage("share plaintext of the wrong size", sender)
    if _SHARE_HEADER.unpack_from(plaintext) != (sender, recipient):
        raise IntegrityError("share names other parties than its envelope", sender)
    key_share, seed_share = plaintext[_SHARE_HEADER.size:-size], plaintext[-size:]
    shamir.shares_from_bytes_many([key_share, seed_share])  # both validated in one pass
    return key_share, seed_share


def share_associated_data(context: bytes, sender: int, recipient: int) -> bytes:
    return b"fedsecure/secagg/v1/shares" + context + struct.pack("<II", sender, recipient)


def view_digest(context: bytes, body) -> bytes:
    """What a client echoes of a server message it acted on: SHA-256 over the message body's
    canonical encoding, so the server detects a view altered in transit."""
    return hashlib.sha256(b"fedsecure/secagg/v1/view" + context
                          + msgspec.msgpack.encode(body)).digest()


def seed_commitment(seed: bytes, owner: int, context: bytes) -> bytes:
    """Binding commitment to a self-mask seed (checked after reconstruction)."""
    return hashlib.sha256(b"fedsecure/secagg/v1/seed-commitment" + context
                          + _U32.pack(owner) + seed).digest()


# --------------------------------------------------------------------------- malicious mode
# What a client signs with its identity key; each message binds the protocol, purpose,
# session, round and the signer, so no signature can be replayed elsewhere.

def _signed(purpose: bytes, context: bytes, signer: int, payload: bytes) -> bytes:
    return b"fedsecure/secagg/v1/sign/" + purpose + b"\x00" + context + _U32.pack(signer) + payload


def advertisement_message(context: bytes, client: int, encryption_key: bytes,
                          masking_key: bytes) -> bytes:
    return _signed(b"advertise", context, client, encryption_key + masking_key)


def ciphertext_message(context: bytes, sender: int, recipient: int, ephemeral_key: bytes,
                       ciphertext: bytes) -> bytes:
    return _signed(b"share", context, sender, _U32.pack(recipient) + ephemeral_key + ciphertext)


def receipt_message(context: bytes, client: int, complaints, roster_digest: bytes,
                    forwarded_digest: bytes) -> bytes:
    return _signed(b"receipt", context, client,
                   msgspec.msgpack.encode(sorted(complaints)) + roster_digest + forwarded_digest)


def survivors_message(context: bytes, client: int, survivors) -> bytes:
    return _signed(b"survivors", context, client, msgspec.msgpack.encode(sorted(survivors)))
