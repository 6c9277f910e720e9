"""Party snapshots: a party's state as bytes between two calls of a front end, and back.

Front ends that do not keep Python objects alive between messages (Flower runs each ClientApp
call wherever a worker is free, or in a fresh process) save ``party.snapshot()`` where the
party lives and call ``party.restore(data)`` on a fresh party of the same aggregator before the
next message.  Written once, for every party class:

* each class declares ``STATE = {attribute: type}``: what changes during a round; everything
  else (the aggregator, the party id, rng, contexts derived from the session) is rebuilt from
  the aggregator and listed in ``REBUILT``.  ``snapshot()`` refuses a party holding an
  attribute declared in neither (a new field must be declared, never silently lost) or
  holding unsent messages;
* the encoding is MessagePack through msgspec, typed by ``STATE`` (no Python object
  serialization): bytes, ints, tuples, frozensets and dicts natively; X25519 key pairs, NumPy
  arrays and CKKS contexts
  through the hooks below.  Decoding checks every field's type;
* a header binds the snapshot to the party's class, session, round and id: restoring it into
  another party raises LocalProtocolError.

A snapshot holds the party's secrets (private keys, shares, seeds, its input): it belongs in
storage only its owner reads (Flower: the node's ``context.state``, which never leaves the
SuperNode), like the party object itself.
"""

from __future__ import annotations

from functools import cache

import msgspec
import numpy as np

from fedsecure.errors import LocalProtocolError
from fedsecure.hazmat.agreement import KeyPair
from fedsecure.hazmat.ckks import PublicContext, load_context

_HEADER = ("kind", "session", "round", "party")


def _enc_hook(obj):
    if isinstance(obj, KeyPair):
        return (obj.private, obj.public)
    if isinstance(obj, np.ndarray):
        return (obj.dtype.str, obj.tobytes())
    if isinstance(obj, PublicContext):  # or SecretContext: serialize() keeps what it holds
        return obj.serialize()
    raise NotImplementedError(f"no snapshot encoding for {type(obj).__name__}")


def _dec_hook_for(party):
    def hook(kind, obj):
        if kind is KeyPair:
            return KeyPair(*obj)
        if kind is np.ndarray:
            dtype, data = obj
            return np.frombuffer(data, dtype=np.dtype(dtype)).copy()
        if kind is PublicContext:
            return load_context(obj, party.agg.parameters)
        raise NotImplementedError(f"no snapshot decoding for {kind}")

    return hook


@cache
def _struct_for(cls) -> type:
    fields = [("kind", str), ("session", bytes), ("round", int), ("party", int)]
    fields += sorted(cls.STATE.items())
    return msgspec.defstruct(f"{cls.__name__}Snapshot", fields, array_like=True,
                             forbid_unknown_fields=True)


def _header(party) -> tuple:
    return (type(party).__name__, party.agg.session, party.agg.spec.round, party.party_id)


def snapshot(party) -> bytes:
    """The party's round state as bytes (see the module docstring)."""
    cls = type(party)
    undeclared = sorted(set(vars(party)) - set(cls.STATE) - set(cls.REBUILT))
    if undeclared:
        raise LocalProtocolError(f"{cls.__name__} has state not declared in STATE or REBUILT:"
                                 f" {undeclared}")
    if party._outbox:
        raise LocalProtocolError("snapshot() with unsent messages: call messages_to_send() first")
    values = dict(zip(_HEADER, _header(party)))
    values.update({name: getattr(party, name) for name in cls.STATE})
    return msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode(_struct_for(cls)(**values))


def restore(party, data: bytes) -> None:
    """Load ``snapshot(p)`` into ``party``, a fresh party of the same aggregator and id as p."""
    cls = type(party)
    try:
        state = msgspec.msgpack.Decoder(_struct_for(cls), dec_hook=_dec_hook_for(party)).decode(data)
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise LocalProtocolError(f"not a {cls.__name__} snapshot: {exc}") from None
    found = tuple(getattr(state, name) for name in _HEADER)
    if found != _header(party):
        raise LocalProtocolError(f"snapshot of {found[0]} {found[3]} (round {found[2]}) does not"
                                 f" belong to {cls.__name__} {party.party_id} of this session"
                                 f" and round {party.agg.spec.round}")
    if party.phase != "idle":
        raise LocalProtocolError(f"restore() into a party that has started (phase {party.phase!r})")
    for name in cls.STATE:
        setattr(party, name, getattr(state, name))
