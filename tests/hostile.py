"""Hostile clients for adversarial tests: an honest SecAgg client whose outgoing messages are
rewritten by a named behaviour, and an aggregator that hands them out for chosen client ids.

Each behaviour is what one malicious client can do on its own (the issue's attack list): the
tests check that it can only get *itself* dropped (or, for weights, that the round refuses a
total it cannot have produced)."""

from __future__ import annotations

import msgspec
import numpy as np

from fedsecure.kernels import pack, unpack
from fedsecure.messages import (
    AddressedCiphertext,
    AdvertiseKeys,
    EncryptedShares,
    MaskedInput,
    RevealedShare,
    ShareReceipt,
    UnmaskShares,
)
from fedsecure.protocols.secagg import SecAggAggregator, SecAggPlusAggregator

ORDER_8_POINT = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def _body(envelope, body):
    return msgspec.structs.replace(envelope, body=body)


def low_order_keys(envelope, agg, client):
    if isinstance(envelope.body, AdvertiseKeys):
        return [_body(envelope, AdvertiseKeys(bytes(32), ORDER_8_POINT))]
    return [envelope]


def garbage_shares(envelope, agg, client):
    """Its share ciphertexts to its two lowest-numbered holders are garbage (true complaints
    against it follow, and it opens them honestly)."""
    body = envelope.body
    if isinstance(body, EncryptedShares):
        victims = sorted(i.peer for i in body.shares)[:2]
        bad = [AddressedCiphertext(i.peer, i.ephemeral_public_key, bytes(len(i.ciphertext)))
               if i.peer in victims else i for i in body.shares]
        return [_body(envelope, EncryptedShares(bad, body.seed_commitment))]
    return [envelope]


def false_complaints(envelope, agg, client):
    """Complains about every neighbour that sent it a share."""
    body = envelope.body
    if isinstance(body, ShareReceipt):
        return [_body(envelope, ShareReceipt(sorted(client._senders), body.roster_digest,
                                             body.forwarded_digest))]
    return [envelope]


def corrupt_unmask_share(envelope, agg, client):
    """One revealed seed share is replaced by other (valid) field elements."""
    body = envelope.body
    if isinstance(body, UnmaskShares) and body.seed_shares:
        first, *rest = body.seed_shares
        row = np.frombuffer(first.share, "<u4").copy()
        row[0] = (int(row[0]) + 1) % (2**31 - 1)
        seeds = [RevealedShare(first.owner, row.tobytes()), *rest]
        return [_body(envelope, UnmaskShares(seeds, body.key_shares, body.request_digest))]
    return [envelope]


def oversized_input(envelope, agg, client):
    """A masked input one word past the round's size cap."""
    body = envelope.body
    if isinstance(body, MaskedInput):
        size = agg.max_message_bytes(to_server=True) + 1
        return [_body(envelope, MaskedInput(bytes(size), body.masking_set_digest))]
    return [envelope]


def writes_to_peers(envelope, agg, client):
    """Also sends each of its messages, well-formed, straight to every other client."""
    copies = [msgspec.structs.replace(envelope, recipient=peer)
              for peer in agg.spec.client_ids if peer != client.party_id]
    return [envelope, *copies]


def inflated_weight(envelope, agg, client):
    """Adds 1000 to the weight word of its masked input (it claims a weight it cannot have)."""
    body = envelope.body
    if isinstance(body, MaskedInput):
        fixed, count = agg.fixed_point, agg.spec.vector_length + 1
        words = unpack(body.masked, count, fixed.modulus_bits, fixed.dtype)
        words[-1] = (int(words[-1]) + 1000) & fixed.mask
        return [_body(envelope, MaskedInput(pack(words, fixed.modulus_bits).tobytes(),
                                            body.masking_set_digest))]
    return [envelope]


BEHAVIOURS = {f.__name__: f for f in (low_order_keys, garbage_shares, false_complaints,
                                      corrupt_unmask_share, oversized_input, writes_to_peers)}
"""The behaviours a property test may give any hostile client (weights aside: only the total
can bound them, see ``inflated_weight``)."""


class HostileClient:
    """An honest client whose outgoing envelopes pass through ``behaviour``."""

    def __init__(self, inner, behaviour, aggregator):
        self._inner = inner
        self._behaviour = behaviour
        self._aggregator = aggregator

    def messages_to_send(self) -> list:
        out = []
        for envelope in self._inner.messages_to_send():
            out.extend(self._behaviour(envelope, self._aggregator, self._inner))
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _Hostile:
    """Mixin: the clients in ``hostile`` (id -> behaviour) misbehave."""

    def __init__(self, spec, *, hostile, **options):
        super().__init__(spec, **options)
        self.hostile = dict(hostile)

    def client(self, client_id, *, rng=None):
        client = super().client(client_id, rng=rng)
        behaviour = self.hostile.get(client_id)
        return client if behaviour is None else HostileClient(client, behaviour, self)


class HostileSecAgg(_Hostile, SecAggAggregator):
    """SecAgg with hostile clients."""


class HostileSecAggPlus(_Hostile, SecAggPlusAggregator):
    """SecAgg+ with hostile clients."""
