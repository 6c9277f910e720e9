"""The one codec: round-trips every message, and hostile bytes raise MalformedMessage only."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import MalformedMessage
from fedsecure.messages import (
    ALL_MESSAGES,
    AddressedCiphertext,
    AdvertiseKeys,
    ArrayPayload,
    EncryptedShares,
    Envelope,
    KeyRoster,
    MaskedInput,
    MaskingSet,
    OpenRequest,
    RevealedShare,
    RosterEntry,
    ShareOpening,
    ShareOpenings,
    ShareReceipt,
    UnmaskRequest,
    UnmaskShares,
    decode,
    encode,
)

ids = st.integers(0, 2**31 - 1)
key = st.binary(min_size=32, max_size=32)
arrays = st.builds(lambda a: ArrayPayload.pack(np.asarray(a, dtype=np.uint32)),
                   st.lists(st.integers(0, 2**32 - 1), max_size=50))
bodies = st.one_of(
    st.builds(AdvertiseKeys, key, key),
    st.builds(KeyRoster, st.lists(st.builds(RosterEntry, ids, key, key), max_size=5)),
    st.builds(EncryptedShares, st.lists(st.builds(AddressedCiphertext, ids, key,
                                                  st.binary(min_size=28, max_size=200)),
                                        max_size=5), key),
    st.builds(ShareReceipt, st.lists(ids, max_size=5), key, key),
    st.builds(OpenRequest, st.lists(ids, max_size=5)),
    st.builds(ShareOpenings, st.lists(st.builds(ShareOpening, ids, key), max_size=5)),
    st.builds(MaskingSet, st.lists(ids, max_size=5)),
    st.builds(MaskedInput, st.binary(max_size=200), key),
    st.builds(UnmaskRequest, st.lists(ids, max_size=5), st.lists(ids, max_size=5)),
    st.builds(UnmaskShares, *[st.lists(st.builds(RevealedShare, ids, st.binary(min_size=1,
                                                                             max_size=64)),
                                       max_size=5)] * 2, key),
)
envelopes = st.builds(Envelope, session=st.binary(min_size=16, max_size=16),
                      round=st.integers(0, 2**63 - 1), sender=ids, recipient=ids, body=bodies)


@settings(max_examples=300)
@given(envelopes)
def test_round_trip(envelope):
    assert decode(encode(envelope)) == envelope


@settings(max_examples=1000)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_malformed_message(data):
    try:
        decode(data)
    except MalformedMessage:
        pass


@settings(max_examples=500)
@given(envelopes, st.data())
def test_mutated_messages_decode_or_raise_malformed_message(envelope, data):
    raw = bytearray(encode(envelope))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        decode(bytes(raw[:cut]))
    except MalformedMessage:
        pass


def test_every_message_type_is_in_the_union():
    names = {t.__name__ for t in ALL_MESSAGES}
    assert {"AdvertiseKeys", "KeyRoster", "EncryptedShares", "ForwardedShares", "MaskedInput",
            "UnmaskRequest", "UnmaskShares", "Abort", "PlainUpdate"} <= names


@pytest.mark.parametrize("field, bad", [("session", bytes(15)), ("sender", -1),
                                        ("recipient", 2**31), ("version", 2)])
def test_out_of_range_envelope_fields_are_malformed(field, bad):
    fields = dict(session=bytes(16), round=0, sender=1, recipient=0,
                  body=AdvertiseKeys(bytes(32), bytes(32)), version=1)
    fields[field] = bad
    raw = msgspec.msgpack.encode([fields[k] for k in
                                  ("session", "round", "sender", "recipient")]
                                 + [["AdvertiseKeys", bytes(32), bytes(32)], fields["version"]])
    with pytest.raises(MalformedMessage):
        decode(raw)


def test_unknown_tag_and_extra_fields_are_malformed():
    good = msgspec.msgpack.decode(encode(Envelope(session=bytes(16), round=0, sender=1,
                                                  recipient=0,
                                                  body=AdvertiseKeys(bytes(32), bytes(32)))))
    unknown = list(good)
    unknown[4] = ["Pickle", b"x"]
    extra = list(good)
    extra[4] = list(good[4]) + [b"extra"]
    for raw in (unknown, extra):
        with pytest.raises(MalformedMessage):
            decode(msgspec.msgpack.encode(raw))


def test_array_payload_checks_length_and_dtype():
    payload = ArrayPayload.pack(np.arange(4, dtype=np.uint32))
    np.testing.assert_array_equal(payload.unpack(length=4, dtype="<u4"), np.arange(4))
    with pytest.raises(MalformedMessage):
        payload.unpack(length=5, dtype="<u4")
    with pytest.raises(MalformedMessage):
        payload.unpack(length=4, dtype="<u8")
