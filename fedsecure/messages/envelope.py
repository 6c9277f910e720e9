"""The envelope every protocol message travels in, and the one codec: bytes <-> Envelope.

Wire format (version 1): MessagePack, structs encoded as arrays (``array_like``); the body is a
tagged union whose first element is the message's tag string.  Arrays travel as raw
little-endian buffers (:class:`ArrayPayload`).  No Python object serialization is ever used.

Decoding hostile bytes raises :class:`~fedsecure.errors.MalformedMessage` and nothing else.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import numpy as np

from fedsecure.errors import MalformedMessage

PROTOCOL_VERSION = 1
SERVER_ID = 0
"""Party id of the server / aggregator.  Clients are numbered 1..n (their Shamir x-coordinates)."""

SESSION_ID_BYTES = 16
MAX_PARTY_ID = 2**31 - 1

ENVELOPE_OVERHEAD_BYTES = 256
"""Generous bound on an envelope's bytes around its body's fields (ids, session, tags):
per-message size caps are this plus what the fields may hold."""

PartyId = Annotated[int, msgspec.Meta(ge=0, le=MAX_PARTY_ID)]
SessionId = Annotated[bytes, msgspec.Meta(min_length=SESSION_ID_BYTES, max_length=SESSION_ID_BYTES)]
RoundNumber = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Bytes32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class Message(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True, tag=True):
    """Base class of every message body; the tag is the class name."""


ArrayDtype = Literal["<u4", "<u8", "<f4", "<f8"]


class ArrayPayload(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """A 1-D numeric array as a raw little-endian buffer."""

    dtype: ArrayDtype
    data: bytes

    @classmethod
    def pack(cls, array: np.ndarray) -> ArrayPayload:
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<").str
        if dtype not in ("<u4", "<u8", "<f4", "<f8"):
            raise TypeError(f"unsupported array dtype on the wire: {array.dtype}")
        return cls(dtype=dtype, data=array.astype(dtype, copy=False).tobytes())

    def unpack(self, *, length: int, dtype: str, sender: int | None = None) -> np.ndarray:
        """The array, checked to have exactly ``length`` elements of ``dtype``."""
        if self.dtype != dtype:
            raise MalformedMessage(f"array dtype {self.dtype!r}, expected {dtype!r}", sender)
        itemsize = np.dtype(dtype).itemsize
        if len(self.data) != length * itemsize:
            raise MalformedMessage(
                f"array of {len(self.data)} bytes, expected {length} x {itemsize}", sender
            )
        return np.frombuffer(self.data, dtype=dtype)


def envelope_type(body_union):
    """Build the Envelope struct for a union of body types (done once in ``messages``).

    Fields, in wire order: session (16 bytes), round, sender, recipient, body, version.
    """
    return msgspec.defstruct(
        "Envelope",
        [
            ("session", SessionId),
            ("round", RoundNumber),
            ("sender", PartyId),
            ("recipient", PartyId),
            ("body", body_union),
            ("version", int, PROTOCOL_VERSION),
        ],
        module=__name__,
        frozen=True,
        array_like=True,
        forbid_unknown_fields=True,
    )


class Codec:
    """Encode and decode envelopes; the single point where bytes become messages."""

    def __init__(self, envelope_cls):
        self.envelope_cls = envelope_cls
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(envelope_cls)

    def encode(self, envelope) -> bytes:
        return self._encoder.encode(envelope)

    def decode(self, data: bytes | bytearray | memoryview):
        try:
            envelope = self._decoder.decode(data)
        except (msgspec.DecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise MalformedMessage(f"undecodable message: {exc}") from None
        if envelope.version != PROTOCOL_VERSION:
            raise MalformedMessage(
                f"wire version {envelope.version}, this build speaks {PROTOCOL_VERSION}",
                envelope.sender,
            )
        return envelope
