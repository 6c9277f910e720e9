"""Ed25519: sign/verify, every failure is an IntegrityError, known answers."""

import pytest
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError, IntegrityError
from fedsecure.hazmat.signing import generate_signing_key, sign, verify
from fedsecure.rng import DeterministicRandom

# RFC 8032, section 7.1, TEST 2.
RFC_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")


def test_rfc8032_vector():
    assert sign(RFC_SEED, b"\x72") == RFC_SIGNATURE
    verify(RFC_PUBLIC, b"\x72", RFC_SIGNATURE)


@settings(max_examples=20, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=200))
def test_sign_verify_matches_pycryptodome(seed, message):
    pair = generate_signing_key(DeterministicRandom(seed))
    signature = sign(pair.private, message)
    assert len(signature) == 64
    verify(pair.public, message, signature)
    theirs = ECC.construct(curve="Ed25519", seed=pair.private)
    assert theirs.public_key().export_key(format="raw") == pair.public
    assert eddsa.new(theirs, "rfc8032").sign(message) == signature


@pytest.mark.parametrize("bit", [0, 100, 511])
def test_flipped_signature_bit_fails(bit):
    pair = generate_signing_key(DeterministicRandom(1))
    signature = bytearray(sign(pair.private, b"message"))
    signature[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        verify(pair.public, b"message", bytes(signature))


def test_wrong_message_or_key_fails():
    pair, other = generate_signing_key(DeterministicRandom(1)), generate_signing_key(
        DeterministicRandom(2))
    signature = sign(pair.private, b"message")
    with pytest.raises(IntegrityError):
        verify(pair.public, b"messagf", signature)
    with pytest.raises(IntegrityError):
        verify(other.public, b"message", signature)


@pytest.mark.parametrize("public,signature", [
    (RFC_PUBLIC, RFC_SIGNATURE[:63]),
    (RFC_PUBLIC, RFC_SIGNATURE + b"\x00"),
    (RFC_PUBLIC[:31], RFC_SIGNATURE),
    (b"", RFC_SIGNATURE),
    (RFC_PUBLIC, "not bytes"),
])
def test_malformed_inputs_fail_as_integrity_errors(public, signature):
    with pytest.raises(IntegrityError):
        verify(public, b"\x72", signature)


def test_verify_returns_none():
    assert verify(RFC_PUBLIC, b"\x72", RFC_SIGNATURE) is None


def test_bad_private_key_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        sign(bytes(31), b"x")
