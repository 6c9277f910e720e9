"""``masking.open_share``: the two shares come back as sealed, and a plaintext whose shares
are not field elements, or of the wrong size, is refused as malformed."""

from __future__ import annotations

import struct

import pytest

from fedsecure.errors import IntegrityError, MalformedMessage
from fedsecure.hazmat import seal
from fedsecure.hazmat.shamir import CHUNKS, PRIME, SHARE_BYTES
from fedsecure.protocols.secagg import masking
from fedsecure.rng import DeterministicRandom

KEY, CONTEXT, SENDER, RECIPIENT = bytes(range(32)), b"ctx", 3, 9


def _sealed(plaintext: bytes, sender: int = SENDER) -> bytes:
    ad = masking.share_associated_data(CONTEXT, sender, RECIPIENT)
    return seal(KEY, plaintext, ad, DeterministicRandom(0))


def _share(first_word: int) -> bytes:
    return struct.pack(f"<{CHUNKS}I", first_word, *range(1, CHUNKS))


def test_the_sealed_pair_opens():
    key_share, seed_share = _share(5), _share(PRIME - 1)
    blob = _sealed(masking.share_plaintext(SENDER, RECIPIENT, key_share, seed_share))
    assert masking.open_share(KEY, blob, SENDER, RECIPIENT, CONTEXT) == (key_share, seed_share)


@pytest.mark.parametrize("which", ["key", "seed"])
def test_a_share_outside_the_field_is_malformed(which):
    good, bad = _share(7), _share(PRIME)
    pair = (bad, good) if which == "key" else (good, bad)
    blob = _sealed(masking.share_plaintext(SENDER, RECIPIENT, *pair))
    with pytest.raises(MalformedMessage):
        masking.open_share(KEY, blob, SENDER, RECIPIENT, CONTEXT)


def test_wrong_size_and_wrong_parties_are_refused():
    short = masking.share_plaintext(SENDER, RECIPIENT, _share(1), _share(2))[:-1]
    with pytest.raises(MalformedMessage, match="wrong size"):
        masking.open_share(KEY, _sealed(short), SENDER, RECIPIENT, CONTEXT)
    other = struct.pack("<II", SENDER + 1, RECIPIENT) + _share(1) + _share(2)
    with pytest.raises(IntegrityError, match="other parties"):
        masking.open_share(KEY, _sealed(other), SENDER, RECIPIENT, CONTEXT)
    assert len(_share(0)) == SHARE_BYTES
