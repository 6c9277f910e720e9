"""AES-256-GCM: round trip, every kind of tampering, known answers against pycryptodome."""

import pytest
from Crypto.Cipher import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError, IntegrityError
from fedsecure.hazmat.aead import NONCE_BYTES, OVERHEAD, TAG_BYTES, seal, unseal
from fedsecure.rng import DeterministicRandom

KEY = bytes(range(32))
AD = b"session=1|round=2|from=3|to=4"


def test_overhead_is_nonce_plus_tag():
    assert OVERHEAD == 28 == NONCE_BYTES + TAG_BYTES
    assert len(seal(KEY, b"abc", AD)) == 3 + OVERHEAD


@settings(max_examples=30, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), plaintext=st.binary(max_size=300),
       ad=st.binary(max_size=60))
def test_round_trip_and_known_answer(key, plaintext, ad):
    blob = seal(key, plaintext, ad, rng=DeterministicRandom(plaintext))
    assert unseal(key, blob, ad) == plaintext
    nonce, body, tag = blob[:12], blob[12:-16], blob[-16:]
    assert nonce == DeterministicRandom(plaintext).bytes(12)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(ad)
    expected_body, expected_tag = cipher.encrypt_and_digest(plaintext)
    assert (body, tag) == (expected_body, expected_tag)


def test_fresh_nonce_per_seal():
    assert seal(KEY, b"same", AD) != seal(KEY, b"same", AD)


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
@pytest.mark.parametrize("bit", [0, 7])
def test_any_flipped_bit_fails(where, bit):
    blob = bytearray(seal(KEY, b"the share of party 7", AD))
    index = {"nonce": 3, "ciphertext": NONCE_BYTES + 5, "tag": len(blob) - 1}[where]
    blob[index] ^= 1 << bit
    with pytest.raises(IntegrityError):
        unseal(KEY, bytes(blob), AD)


def test_wrong_associated_data_fails():
    blob = seal(KEY, b"payload", AD)
    with pytest.raises(IntegrityError):
        unseal(KEY, blob, AD.replace(b"to=4", b"to=5"))
    with pytest.raises(IntegrityError):
        unseal(KEY, blob, b"")


def test_wrong_key_fails():
    blob = seal(KEY, b"payload", AD)
    with pytest.raises(IntegrityError):
        unseal(bytes(32), blob, AD)


@pytest.mark.parametrize("length", [0, 1, OVERHEAD - 1, OVERHEAD, OVERHEAD + 6])
def test_truncated_blob_fails(length):
    blob = seal(KEY, b"payload", AD)  # OVERHEAD + 7 bytes
    with pytest.raises(IntegrityError):
        unseal(KEY, blob[:length], AD)


def test_empty_plaintext_still_authenticated():
    blob = seal(KEY, b"", AD)
    assert len(blob) == OVERHEAD and unseal(KEY, blob, AD) == b""
    with pytest.raises(IntegrityError):
        unseal(KEY, blob, AD + b"x")


@pytest.mark.parametrize("key", [bytes(16), bytes(31), "k" * 32])
def test_bad_key_is_a_configuration_error(key):
    with pytest.raises(ConfigurationError):
        seal(key, b"x", AD)
    with pytest.raises(ConfigurationError):
        unseal(key, bytes(40), AD)
