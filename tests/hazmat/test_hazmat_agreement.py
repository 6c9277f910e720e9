"""X25519 agreement and HKDF: symmetry, known answers, cross-checks against pycryptodome."""

import pytest
from Crypto.Hash import SHA256
from Crypto.Protocol.DH import import_x25519_private_key, import_x25519_public_key, key_agreement
from Crypto.Protocol.KDF import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError, IntegrityError
from fedsecure.hazmat.agreement import (
    agree,
    agree_many,
    derive_key,
    generate_keypair,
    public_key_of,
)
from fedsecure.rng import DeterministicRandom

# RFC 7748, section 6.1.
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# Points of small order on Curve25519 (and their non-canonical encodings).
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


def test_rfc7748_vector():
    assert public_key_of(ALICE_PRIVATE) == ALICE_PUBLIC
    assert public_key_of(BOB_PRIVATE) == BOB_PUBLIC
    assert agree(ALICE_PRIVATE, BOB_PUBLIC) == SHARED
    assert agree(BOB_PRIVATE, ALICE_PUBLIC) == SHARED


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_both_sides_agree_and_match_pycryptodome(a_private, b_private):
    a_public, b_public = public_key_of(a_private), public_key_of(b_private)
    shared = agree(a_private, b_public)
    assert shared == agree(b_private, a_public)
    assert len(shared) == 32
    theirs = key_agreement(static_priv=import_x25519_private_key(a_private),
                           static_pub=import_x25519_public_key(b_public), kdf=lambda z: z)
    assert shared == theirs


def test_generate_keypair_is_reproducible_from_rng():
    first = generate_keypair(DeterministicRandom("agree"))
    again = generate_keypair(DeterministicRandom("agree"))
    other = generate_keypair(DeterministicRandom("other"))
    assert first == again and first.public != other.public
    assert first.private == DeterministicRandom("agree").bytes(32)
    assert first.public == public_key_of(first.private)
    assert first.private.hex() not in repr(first)


@pytest.mark.parametrize("peer", LOW_ORDER, ids=range(len(LOW_ORDER)))
def test_low_order_peer_key_is_rejected(peer):
    with pytest.raises(IntegrityError):
        agree(ALICE_PRIVATE, peer)


def test_agree_many_equals_agree_per_peer():
    rng = DeterministicRandom("many")
    peers = [generate_keypair(rng).public for _ in range(5)]
    assert agree_many(ALICE_PRIVATE, peers) == [agree(ALICE_PRIVATE, p) for p in peers]
    assert agree_many(ALICE_PRIVATE, []) == []
    with pytest.raises(IntegrityError, match="#2"):
        agree_many(ALICE_PRIVATE, peers[:2] + [LOW_ORDER[2]] + peers[2:])


@pytest.mark.parametrize("peer", [bytes(31), BOB_PUBLIC + b"\x00", b""])
def test_wrong_length_peer_key_is_rejected(peer):
    with pytest.raises(IntegrityError):
        agree(ALICE_PRIVATE, peer)


def test_wrong_length_private_key_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        public_key_of(bytes(31))
    with pytest.raises(ConfigurationError):
        agree(bytes(33), BOB_PUBLIC)


@settings(max_examples=25, deadline=None)
@given(secret=st.binary(min_size=1, max_size=64), purpose=st.text(
    alphabet=st.characters(blacklist_characters="\x00"), max_size=20),
    context=st.binary(max_size=40), length=st.integers(1, 96))
def test_hkdf_matches_pycryptodome(secret, purpose, context, length):
    info = b"fedsecure/v1/" + purpose.encode() + b"\x00" + context
    expected = HKDF(secret, length, None, SHA256, context=info)
    assert derive_key(secret, purpose=purpose, context=context, length=length) == expected


def test_derive_key_separates_purpose_and_context():
    secret = bytes(range(32))
    keys = {
        derive_key(secret, purpose="mask-prg", context=b"s1"),
        derive_key(secret, purpose="mask-prg", context=b"s2"),
        derive_key(secret, purpose="share-aead", context=b"s1"),
        # The NUL separator keeps ("ab", "c") apart from ("a", "bc").
        derive_key(secret, purpose="a", context=b"\x00b"),
        derive_key(secret, purpose="a\x01", context=b"b"),
    }
    assert len(keys) == 5
    with pytest.raises(ConfigurationError):
        derive_key(secret, purpose="a\x00", context=b"")
