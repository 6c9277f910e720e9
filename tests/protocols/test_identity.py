"""The identity registry: registered keys verify, anything else is refused; a closed
registration (population and registrar nonce) loads from a file."""

import json

import pytest

from fedsecure.errors import ConfigurationError, IntegrityError
from fedsecure.hazmat import generate_signing_key, sign
from fedsecure.protocols.identity import StaticRegistry
from fedsecure.rng import DeterministicRandom


def test_registered_keys_verify_and_others_are_refused():
    pair, other = (generate_signing_key(DeterministicRandom(s)) for s in ("a", "b"))
    registry = StaticRegistry({1: pair.public})
    registry.check(1, b"m", sign(pair.private, b"m"), 1)
    with pytest.raises(IntegrityError):
        registry.check(1, b"m", sign(other.private, b"m"), 1)
    with pytest.raises(IntegrityError, match="no registered identity key"):
        registry.check(2, b"m", sign(other.private, b"m"), 2)
    assert registry.population() == frozenset({1}) and registry.nonce is None


def test_a_closed_registration_loads_from_a_file(tmp_path):
    keys = {c: generate_signing_key(DeterministicRandom(f"k{c}")).public for c in (1, 2, 3)}
    flat, closed = tmp_path / "flat.json", tmp_path / "closed.json"
    flat.write_text(json.dumps({str(c): k.hex() for c, k in keys.items()}))
    closed.write_text(json.dumps({"keys": {str(c): k.hex() for c, k in keys.items()},
                                  "nonce": "ab" * 32}))
    assert StaticRegistry.from_file(flat).registered == keys
    registry = StaticRegistry.from_file(closed)
    assert registry.registered == keys and registry.nonce == bytes([0xAB]) * 32
    closed.write_text(json.dumps({"keys": {"1": keys[1].hex()}}))  # no nonce
    with pytest.raises(ConfigurationError):
        StaticRegistry.from_file(closed)
    with pytest.raises(ConfigurationError, match="nonce"):
        StaticRegistry(keys, nonce=b"short")
