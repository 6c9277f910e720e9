"""Message bodies of SecAgg / SecAgg+ (Bonawitz et al. CCS'17, Bell et al. CCS'20).

See ``protocols/secagg/SPEC.md`` for the byte layouts and the order of the rounds.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from fedsecure.messages.envelope import Bytes32, Message, PartyId

Ciphertext = Annotated[bytes, msgspec.Meta(min_length=28, max_length=4096)]
Signature = Annotated[bytes, msgspec.Meta(max_length=64)]
"""An Ed25519 signature by the sender's identity key (malicious-server mode), empty otherwise."""


class AdvertiseKeys(Message, frozen=True):
    """Round 0, client -> server: two fresh X25519 public keys."""

    encryption_public_key: Bytes32  # c_pk: authenticated encryption of shares
    masking_public_key: Bytes32  # s_pk: pairwise mask agreement
    signature: Signature = b""


class RosterEntry(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    client: PartyId
    encryption_public_key: Bytes32
    masking_public_key: Bytes32
    signature: Signature = b""  # the client's, over its advertisement (malicious mode)


class KeyRoster(Message, frozen=True):
    """Round 0 reply, server -> each client: the keys of every client that advertised (U1)."""

    entries: list[RosterEntry]


class AddressedCiphertext(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One sealed share pair.  ``ephemeral_public_key`` is the sender's fresh X25519 key for
    this one recipient: the AEAD key is agreed from it and the recipient's encryption key, so
    the sender can later open exactly this ciphertext (and no other) to settle a complaint."""

    peer: PartyId  # recipient when a client sends, original sender when the server forwards
    ephemeral_public_key: Bytes32
    ciphertext: Ciphertext
    signature: Signature = b""  # the sender's, over (recipient, key, ciphertext) (malicious mode)


class EncryptedShares(Message, frozen=True):
    """Round 1, client -> server: one AEAD ciphertext of (key share, seed share) per share
    holder, and a hash commitment to the self-mask seed so the server can verify the seed it
    reconstructs (SHA-256 of a 256-bit random seed reveals nothing about the input)."""

    shares: list[AddressedCiphertext]
    seed_commitment: Bytes32


class ForwardedShares(Message, frozen=True):
    """Round 1 reply, server -> each client: the ciphertexts addressed to it (defines U2)."""

    shares: list[AddressedCiphertext]


class ShareReceipt(Message, frozen=True):
    """Round 2, client -> server: the senders whose share did not open (``complaints``) and
    digests of the roster and forwarded shares as received, so that a view altered in transit
    is detected (the client is dropped) instead of silently corrupting the sum."""

    complaints: list[PartyId]
    roster_digest: Bytes32
    forwarded_digest: Bytes32
    signature: Signature = b""


class SignedReceipt(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """An accuser's ShareReceipt, forwarded so the accused can check the complaint is real."""

    accuser: PartyId
    complaints: list[PartyId]
    roster_digest: Bytes32
    forwarded_digest: Bytes32
    signature: Signature


class OpenRequest(Message, frozen=True):
    """Round 2b (only when there are complaints), server -> accused client: open the
    ciphertexts you sent to ``accusers`` by revealing their ephemeral private keys.  In
    malicious mode ``receipts`` carries each accuser's signed receipt."""

    accusers: list[PartyId]
    receipts: list[SignedReceipt] = []


class ShareOpening(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    accuser: PartyId
    ephemeral_private_key: Bytes32


class ShareOpenings(Message, frozen=True):
    """Round 2b reply, accused client -> server: one ephemeral private key per accuser."""

    openings: list[ShareOpening]


class MaskingSet(Message, frozen=True):
    """Round 2 reply, server -> each remaining client: the clients everyone masks with (U2,
    after complaints are settled)."""

    clients: list[PartyId]


class MaskedInput(Message, frozen=True):
    """Round 3, client -> server: the masked, quantized, weighted input (+ weight as last word),
    its d + 1 ring words bit-packed to modulus_bits each (``kernels.packing``), and the digest
    of the MaskingSet it was masked for."""

    masked: bytes
    masking_set_digest: Bytes32


class ConsistencyCheck(Message, frozen=True):
    """Malicious mode, server -> each member of U3: the survivor set, to be signed."""

    survivors: list[PartyId]


class ConsistencySignature(Message, frozen=True):
    """Malicious mode, client -> server: its signature over (session, round, U3)."""

    signature: Signature


class SurvivorSignature(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    client: PartyId
    signature: Signature


class UnmaskRequest(Message, frozen=True):
    """Round 4, server -> each survivor: who survived (reveal seed shares) and who dropped
    (reveal masking-key shares).  The two lists must be disjoint."""

    survivors: list[PartyId]
    dropped: list[PartyId]
    signatures: list[SurvivorSignature] = []  # malicious mode: >= t signatures on U3


class RevealedShare(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    owner: PartyId
    share: Annotated[bytes, msgspec.Meta(min_length=1, max_length=1024)]


class UnmaskShares(Message, frozen=True):
    """Round 4 reply, client -> server: seed shares of survivors, key shares of dropped clients,
    and the digest of the UnmaskRequest it answers."""

    seed_shares: list[RevealedShare]
    key_shares: list[RevealedShare]
    request_digest: Bytes32


class Abort(Message, frozen=True):
    """Server -> clients: the round is over without a result."""

    reason: Annotated[str, msgspec.Meta(max_length=1024)]


SECAGG_MESSAGES = (
    AdvertiseKeys,
    KeyRoster,
    EncryptedShares,
    ForwardedShares,
    ShareReceipt,
    OpenRequest,
    ShareOpenings,
    MaskingSet,
    MaskedInput,
    ConsistencyCheck,
    ConsistencySignature,
    UnmaskRequest,
    UnmaskShares,
    Abort,
)
