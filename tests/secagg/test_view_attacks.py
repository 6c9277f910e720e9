"""Attacks 2, 3 and 5 of the malicious-server issue, end to end: a scripted server shows honest
clients different views, collects what they reveal and tries to unmask one honest input.

- *Different survivor sets* (2) with *dropping a client and asking for its shares* (5): the
  victim sent its masked input; the server tells some holders it survived (they reveal its
  self-mask seed shares) and others that it dropped (they reveal its masking-key shares).
  With one colluding client — far fewer than the t − 1 SecAgg claims to tolerate — that is
  t of each, at n = 7 and the default threshold.
- *Different views of who sent shares* (3), with 2 and 5: the victim is forwarded the shares
  of only t − 1 peers P, so it masks with P alone; everyone else is told the victim survived
  and P dropped (although P sent their inputs), each with an individually legal request.
  Honest clients only, default threshold.

In semi-honest mode both recover the victim's input exactly; in malicious mode the honest
clients refuse (no set gathers t signatures) and what the server collected opens nothing —
on SecAgg and on a sparse SecAgg+ ring (degree 4, t = 4: a colluding neighbour is below the
2t - k - 1 = 3 that breaks it), where the groups are drawn from the victim's neighbourhood.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedsecure.errors import UnsafeRequest
from fedsecure.hazmat import agree, reconstruct_secrets, share_from_bytes, sign
from fedsecure.kernels import dequantize, unpack
from fedsecure.messages import (
    ConsistencyCheck,
    ConsistencySignature,
    ForwardedShares,
    MaskedInput,
    MaskingSet,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskShares,
)
from fedsecure.protocols.base import RoundAborted
from fedsecure.protocols.secagg import CompleteGraph, masking
from tests.harness import Harness
from tests.secagg.helpers import grid_inputs, make_secagg
from tests.secagg.malicious_helpers import identities, make_malicious

VICTIM = 1
MODES = [("secagg", "semi-honest"), ("secagg", "malicious"), ("secaggplus", "malicious")]


def start(protocol, security, seed):
    if security == "semi-honest":
        aggregator = make_secagg(7, 5, seed=seed, max_weight=4)
    elif protocol == "secagg":
        aggregator = make_malicious(7, 5, seed=seed)
    else:
        aggregator = make_malicious(9, 5, seed=seed, protocol="secaggplus", threshold=4)
    inputs = grid_inputs(aggregator, seed)
    return aggregator, inputs, Harness(aggregator, inputs)


def run_to(h, phase):
    while h.server.phase != phase:
        h.run_phase()


def send(h, client, body):
    """The scripted server sends ``body`` to ``client``; returns the bodies it answers with."""
    h.clients[client].receive(h.aggregator.envelope(0, client, body))
    return [e.body for e in h.clients[client].messages_to_send()]


def ask(h, views, colluders=()):
    """Send each client its own survivor set / dropped list; in malicious mode first run the
    consistency round on those sets (colluders sign every set) and attach, for each client,
    every signature the server holds on that client's set from its share holders.  Each
    request is cut to the client's neighbourhood, as the server would.  Returns the
    UnmaskShares given."""
    agg = h.aggregator
    signatures: dict[frozenset, dict[int, bytes]] = {}
    if agg.malicious:
        context = masking.round_context(agg.session, agg.spec.round)
        _, private = identities(agg.spec.n_clients)
        for client, (survivors, _) in views.items():
            for body in send(h, client, ConsistencyCheck(sorted(survivors))):
                if isinstance(body, ConsistencySignature):
                    signatures.setdefault(frozenset(survivors), {})[client] = body.signature
        for survivors in {frozenset(s) for s, _ in views.values()}:
            for c in colluders:
                signatures.setdefault(survivors, {})[c] = sign(
                    private[c], masking.survivors_message(context, c, survivors))
    given = {}
    for client, (survivors, dropped) in views.items():
        if h.clients[client].phase == "aborted":
            continue
        signed = signatures.get(frozenset(survivors), {})
        mine = agg.graph.share_holders(client) & set(survivors)
        request = UnmaskRequest(sorted(mine), sorted(agg.graph.neighbours(client) & set(dropped)),
                                [SurvivorSignature(c, s) for c, s in sorted(signed.items())
                                 if c in mine])
        for body in send(h, client, request):
            if isinstance(body, UnmaskShares):
                given[client] = body
    return given


def collected(given, owner, colluders=(), h=None):
    """(seed shares, key shares) of ``owner`` the server now holds, by holder."""
    seeds = {c: s.share for c, b in given.items() for s in b.seed_shares if s.owner == owner}
    keys = {c: s.share for c, b in given.items() for s in b.key_shares if s.owner == owner}
    for c in colluders:  # a corrupt client hands over both shares it holds
        key_share, seed_share = h.clients[c]._held[owner]
        seeds[c], keys[c] = seed_share, key_share
    return seeds, keys


def reconstruct(shares: dict[int, bytes], t: int) -> bytes:
    holders = sorted(shares)[:t]
    (secret,) = reconstruct_secrets(holders, np.stack([share_from_bytes(shares[c])
                                                       for c in holders])[:, None])
    return secret


def unmask(h, masked: MaskedInput, seed: bytes, pair_seeds: dict[int, bytes]) -> np.ndarray:
    """The victim's input from its masked upload, its self-mask seed and its pair seeds."""
    agg = h.aggregator
    fixed, context = agg.fixed_point, masking.round_context(agg.session, agg.spec.round)
    words = unpack(masked.masked, agg.spec.vector_length + 1, fixed.modulus_bits, fixed.dtype)
    masking.add_self_mask(words, seed, VICTIM, context, -1, fixed.modulus_bits)
    for peer, pair_seed in pair_seeds.items():
        masking.add_pairwise_mask(words, pair_seed, VICTIM, peer, context,
                                  -masking.pairwise_sign(VICTIM, peer), fixed.modulus_bits)
    return dequantize(words, modulus_bits=fixed.modulus_bits, scale=1.0)


def assert_recovered(h, inputs, recovered):
    fixed = h.aggregator.fixed_point
    vector, weight = inputs[VICTIM]
    np.testing.assert_array_equal(recovered[:-1] / fixed.scale, vector * weight)
    assert recovered[-1] == weight


def assert_refused(h, clients):
    for client in clients:
        aborted = Harness.events(None, h.clients[client], RoundAborted)
        assert h.clients[client].phase == "aborted", (client, h.clients[client].phase)
        assert isinstance(aborted[-1].error, UnsafeRequest), aborted


@pytest.mark.parametrize("protocol, security", MODES)
def test_different_survivor_sets_and_one_colluder_unmask_a_client_declared_dropped(protocol,
                                                                                  security):
    aggregator, inputs, h = start(protocol, security, seed=11)
    t, everyone = aggregator.threshold, set(aggregator.spec.client_ids)
    run_to(h, "collect_masked")  # everyone masked with its neighbours
    masked = {e.sender: e.body for e in h.to_server if isinstance(e.body, MaskedInput)}
    assert set(masked) == everyone
    peers = sorted(aggregator.graph.neighbours(VICTIM))
    half = len(peers) // 2 - 1
    colluder, group_a, group_b = peers[-1], [VICTIM, *peers[:half]], peers[half:-1]
    views = {c: (everyone, set()) for c in group_a}  # "the victim survived": seed shares
    views |= {c: (everyone - {VICTIM}, {VICTIM})  # "it dropped": key shares
              for c in everyone - set(group_a) - {colluder}}
    given = ask(h, views, colluders=[colluder])
    seeds, keys = collected(given, VICTIM, [colluder], h)
    if security == "semi-honest":
        assert len(seeds) >= t and len(keys) >= t
        masking_key = reconstruct(keys, t)
        pair_seeds = {p: agree(masking_key, h.server._keys[p].masking_public_key)
                      for p in everyone - {VICTIM}}
        assert_recovered(h, inputs, unmask(h, masked[VICTIM], reconstruct(seeds, t), pair_seeds))
        return
    # fewer than t of the holders' signatures on the victim's set; on the complete graph on
    # the other set too (on the ring a far-away holder may see t signatures on it)
    assert_refused(h, group_a + (group_b if isinstance(aggregator.graph, CompleteGraph) else []))
    assert len(seeds) < t and len(keys) < t


@pytest.mark.parametrize("protocol, security", MODES)
def test_restricted_share_views_and_dropping_its_peers_unmask_an_honest_client(protocol,
                                                                              security):
    aggregator, inputs, h = start(protocol, security, seed=12)
    t, everyone = aggregator.threshold, set(aggregator.spec.client_ids)
    context = masking.round_context(aggregator.session, aggregator.spec.round)
    # P: the t - 1 peers whose shares the victim is shown
    peers = set(sorted(aggregator.graph.neighbours(VICTIM))[:t - 1])
    others = everyone - peers - {VICTIM}
    run_to(h, "collect_shares")
    h.deliver_to_server()
    out = h.close_phase()  # ForwardedShares; the server records the views it really sends
    body = ForwardedShares([i for i in out[VICTIM][0].body.shares if i.peer in peers])
    out[VICTIM][0] = aggregator.envelope(0, VICTIM, body)
    h.server._forwarded[VICTIM] = (frozenset(peers), masking.view_digest(context, body))
    h.deliver_to_clients(out)
    h.deliver_to_server()
    out = h.close_phase()  # MaskingSet: the victim's names only P
    body = MaskingSet(sorted(peers | {VICTIM}))
    out[VICTIM][0] = aggregator.envelope(0, VICTIM, body)
    h.server._digests[VICTIM] = masking.view_digest(context, body)
    h.deliver_to_clients(out)
    masked = {e.sender: e.body for e in h.to_server if isinstance(e.body, MaskedInput)}
    assert set(masked) == everyone  # P sent their inputs too: "dropping" them is a lie
    views = {VICTIM: (peers | {VICTIM}, set())}
    views |= {c: (everyone - peers, peers) for c in others}
    views |= {p: (everyone - (peers - {p}), peers - {p}) for p in peers}
    given = ask(h, views)
    seeds, _ = collected(given, VICTIM)
    peer_keys = {p: collected(given, p)[1] for p in peers}
    if security == "semi-honest":
        assert len(seeds) >= t and all(len(k) >= t for k in peer_keys.values())
        victim_key = h.server._keys[VICTIM].masking_public_key
        pair_seeds = {p: agree(reconstruct(peer_keys[p], t), victim_key) for p in peers}
        assert_recovered(h, inputs, unmask(h, masked[VICTIM], reconstruct(seeds, t), pair_seeds))
    elif isinstance(aggregator.graph, CompleteGraph):
        assert_refused(h, everyone)
        assert given == {}  # nobody revealed a share
    else:  # the victim and P see sets nobody else signed; the victim's seed stays closed
        assert_refused(h, peers | {VICTIM})
        assert len(seeds) < t
