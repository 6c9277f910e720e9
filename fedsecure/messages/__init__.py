"""Typed, frozen wire messages and the one codec (``CODEC``).

Every protocol's message bodies are members of one tagged union ``Body``; an ``Envelope``
carries one body with its session id, round number, sender, recipient and wire version.
"""

from __future__ import annotations

from typing import Union

from fedsecure.messages.ckks import CKKS_MESSAGES
from fedsecure.messages.envelope import (
    ENVELOPE_OVERHEAD_BYTES,
    PROTOCOL_VERSION,
    SERVER_ID,
    SESSION_ID_BYTES,
    ArrayPayload,
    Codec,
    Message,
    envelope_type,
)
from fedsecure.messages.plaintext import PLAINTEXT_MESSAGES, PlainUpdate
from fedsecure.messages.secagg import (
    SECAGG_MESSAGES,
    Abort,
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
    RosterEntry,
    ShareOpening,
    ShareOpenings,
    ShareReceipt,
    SignedReceipt,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskShares,
)

ALL_MESSAGES = SECAGG_MESSAGES + PLAINTEXT_MESSAGES + CKKS_MESSAGES
Body = Union[ALL_MESSAGES]  # type: ignore[valid-type]  # noqa: UP007 (a runtime union of a tuple)
Envelope = envelope_type(Body)
CODEC = Codec(Envelope)
encode = CODEC.encode
decode = CODEC.decode

__all__ = [
    "ENVELOPE_OVERHEAD_BYTES", "PROTOCOL_VERSION", "SERVER_ID", "SESSION_ID_BYTES", "ArrayPayload",
    "Message", "Envelope",
    "CODEC", "encode", "decode", "Body", "ALL_MESSAGES",
    "Abort", "AddressedCiphertext", "AdvertiseKeys", "EncryptedShares", "ForwardedShares",
    "KeyRoster", "MaskedInput", "MaskingSet", "OpenRequest", "RevealedShare", "RosterEntry",
    "ShareOpening", "ShareOpenings", "ShareReceipt", "SignedReceipt", "SurvivorSignature",
    "ConsistencyCheck", "ConsistencySignature", "UnmaskRequest", "UnmaskShares",
    "PlainUpdate",
]
