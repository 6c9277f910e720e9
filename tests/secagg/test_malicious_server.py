"""Malicious-server mode: a scripted adversarial server drives honest clients through each
attack of the issue.  In malicious mode every attack is refused with a typed error and the
attacked client sends nothing that could unmask it; in semi-honest mode the key-substitution
attack is shown to recover an input exactly (tests/secagg/test_view_attacks.py shows attacks 2,
3 and 5; docs/threat-model.md lists what that mode leaves open).  Every malicious-mode scenario
runs on SecAgg (complete graph) and on SecAgg+ (a sparse ring of degree 4, t = 3), built from
the victim's real neighbourhood."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from fedsecure.errors import (
    ConfigurationError,
    IntegrityError,
    MalformedMessage,
    UnsafeRequest,
)
from fedsecure.hazmat import agree, generate_keypair, reconstruct_secrets, share_from_bytes
from fedsecure.kernels import dequantize, unpack
from fedsecure.messages import (
    ConsistencyCheck,
    KeyRoster,
    MaskingSet,
    OpenRequest,
    RosterEntry,
    ShareOpenings,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskShares,
)
from fedsecure.protocols.base import AggregationSpec, RoundAborted, make_aggregator
from fedsecure.protocols.identity import StaticRegistry
from fedsecure.protocols.secagg import masking
from fedsecure.protocols.secagg.parameters import find_graph_parameters
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.harness import Harness
from tests.secagg.helpers import SESSION, exact_sum, grid_inputs, make_secagg
from tests.secagg.malicious_helpers import NONCE, PROTOCOLS, identities, make_malicious


def refused(client, error_type):
    """The client aborted with ``error_type`` and sends nothing more."""
    aborted = [e for e in Harness.events(None, client, RoundAborted)]
    assert client.phase == "aborted", client.phase
    assert aborted and isinstance(aborted[-1].error, error_type), aborted
    assert client.messages_to_send() == []


def run_to(h, server_phase):
    while h.server.phase != server_phase:
        h.run_phase()


def intercept(h):
    """Let the clients' pending answers reach the server and close its phase; return the
    server's messages, undelivered, for the test to rewrite."""
    h.deliver_to_server()
    return h.close_phase()


@pytest.fixture(params=PROTOCOLS)
def protocol(request):
    return request.param


def holders(aggregator, client):
    return aggregator.graph.share_holders(client)


def peers(aggregator, client):
    return sorted(aggregator.graph.neighbours(client))


# ------------------------------------------------------------------ configuration


def test_malicious_mode_needs_identities_and_a_two_thirds_threshold():
    spec = AggregationSpec(n_clients=9, vector_length=4, session=SESSION)
    with pytest.raises(ConfigurationError, match="IdentityRegistry"):
        make_aggregator("secagg", spec, security="malicious")
    public, _ = identities(9)
    with pytest.raises(ConfigurationError, match="floor\\(2n/3\\) \\+ 1 = 7"):
        make_aggregator("secagg", spec, security="malicious", identities=public, threshold=5)
    assert make_aggregator("secagg", spec, security="malicious", identities=public).threshold == 7
    # SecAgg+ too small for a sparse graph falls back to the complete graph and SecAgg's bound
    with pytest.raises(ConfigurationError, match="floor\\(2n/3\\) \\+ 1 = 7"):
        make_aggregator("secaggplus", spec, security="malicious", identities=public, threshold=5)


def test_malicious_secaggplus_uses_the_bound_against_a_server_that_lies_about_dropouts():
    n = 1000
    public = {c: bytes([c % 251]) * 32 for c in range(1, n + 1)}
    registry = StaticRegistry(public, nonce=NONCE)
    spec = AggregationSpec(n_clients=n, vector_length=4, session=SESSION)
    plus = make_aggregator("secaggplus", spec, security="malicious", identities=registry,
                           corrupt_fraction=0.05, dropout_fraction=0.05)
    expected = find_graph_parameters(n, corrupt_fraction=0.05, dropout_fraction=0.05,
                                     adversary="semi-malicious")
    assert (plus.graph.degree, plus.threshold) == (expected.degree, expected.threshold)
    assert plus.parameters.adversary == "semi-malicious" and plus.parameters.security_bits >= 40
    semi_honest = make_aggregator("secaggplus", spec)  # k = 30, t = 17 there
    assert 2 * plus.threshold - plus.graph.degree - 1 > semi_honest.parameters.threshold
    # the semi-honest (k, t) is refused in malicious mode, naming the bound
    with pytest.raises(ConfigurationError, match="2t - k - 1 = 3 corrupt"):
        make_aggregator("secaggplus", spec, security="malicious", identities=registry,
                        degree=30, threshold=17, corrupt_fraction=0.05, dropout_fraction=0.05)
    # a registry that is not a closed registration of exactly this cohort is refused
    with pytest.raises(ConfigurationError, match="registrar's nonce"):
        make_aggregator("secaggplus", spec, security="malicious", identities=public)
    fewer = StaticRegistry({c: k for c, k in public.items() if c != 7}, nonce=NONCE)
    with pytest.raises(ConfigurationError, match="registered population"):
        make_aggregator("secaggplus", spec, security="malicious", identities=fewer)


@pytest.mark.parametrize("silent", [{}, {2: "ShareReceipt", 5: "ConsistencySignature"},
                                    {3: "MaskedInput"}, {9: "UnmaskShares"}])
def test_an_honest_malicious_mode_round_is_exact(silent, protocol):
    aggregator = make_malicious(9, seed=1, protocol=protocol)
    inputs = grid_inputs(aggregator, 1)
    report = simulate_round(aggregator, inputs, faults=[Silent(c, t) for c, t in silent.items()])
    assert report.error is None, report.error
    gone = {c for c, tag in silent.items() if tag in ("ShareReceipt", "MaskedInput")}
    survivors = report.result.survivors
    assert set(survivors) == set(range(1, 10)) - gone
    expected, weight = exact_sum(aggregator, inputs, survivors)
    np.testing.assert_array_equal(report.result.weighted_sum, expected)
    assert report.result.total_weight == weight


# ------------------------------------------------------------------ the SecAgg+ graph


def test_malicious_secaggplus_graph_ignores_the_session_and_round_the_server_picks():
    base = make_malicious(12, protocol="secaggplus")
    rings = {tuple(make_malicious(12, protocol="secaggplus", session=bytes([s]) * 16,
                                  round_number=r).graph.ring.tolist())
             for s in range(4) for r in range(3)}
    assert rings == {tuple(base.graph.ring.tolist())}
    # what does change it: the registrar's nonce (semi-honest mode: the session)
    other = make_malicious(12, protocol="secaggplus", nonce=bytes(32))
    assert other.graph.ring.tolist() != base.graph.ring.tolist()
    spec = AggregationSpec(n_clients=12, vector_length=6, session=SESSION)
    semi = [make_aggregator("secaggplus", spec, degree=4, threshold=3),
            make_aggregator("secaggplus", AggregationSpec(n_clients=12, vector_length=6,
                                                          session=bytes(16)), degree=4,
                            threshold=3)]
    assert semi[0].graph.ring.tolist() != semi[1].graph.ring.tolist()


def test_a_roster_beyond_the_clients_own_graph_is_refused():
    """The server cannot impose another graph: a roster naming a client that is not one of the
    victim's share holders on the ring the victim derived itself is refused, signed or not."""
    aggregator = make_malicious(12, seed=10, protocol="secaggplus")
    h = Harness(aggregator, grid_inputs(aggregator, 10))
    out = intercept(h)
    victim = 1
    outsider = min(set(range(1, 13)) - holders(aggregator, victim))
    holder = min(holders(aggregator, outsider) - {outsider})
    genuine = next(e for e in out[holder][0].body.entries if e.client == outsider)
    entries = sorted([*out[victim][0].body.entries, genuine], key=lambda e: e.client)
    out[victim][0] = msgspec.structs.replace(out[victim][0], body=KeyRoster(entries))
    h.deliver_to_clients(out)
    refused(h.clients[victim], MalformedMessage)
    assert not any(e.sender == victim for e in h.to_server)


# ------------------------------------------------------------------ 1. key substitution


def substitute_roster(out, victim, aggregator):
    """The server replaces every other client's keys in ``victim``'s roster with its own."""
    rng = DeterministicRandom("server-keys")
    fakes = {}
    envelope = out[victim][0]
    entries = []
    for entry in envelope.body.entries:
        if entry.client == victim:
            entries.append(entry)
            continue
        fakes[entry.client] = (generate_keypair(rng), generate_keypair(rng))
        enc, mask = fakes[entry.client]
        entries.append(RosterEntry(entry.client, enc.public, mask.public, entry.signature))
    out[victim][0] = msgspec.structs.replace(envelope, body=KeyRoster(entries))
    return fakes


def test_semi_honest_mode_a_substituted_roster_reveals_the_victims_input():
    aggregator = make_secagg(6, 5, seed=2, scale_bits=8)
    inputs = grid_inputs(aggregator, 2)
    h = Harness(aggregator, inputs)
    out = intercept(h)
    fakes = substitute_roster(out, 1, aggregator)
    h.deliver_to_clients(out)
    sealed = next(e for e in h.to_server if e.sender == 1).body  # its EncryptedShares
    context = masking.round_context(aggregator.session, aggregator.spec.round)
    key_shares, seed_shares, holders = [], [], []
    for item in sealed.shares:  # the server opens what 1 sealed to its "peers"
        secret = agree(fakes[item.peer][0].private, item.ephemeral_public_key)
        key = masking.share_key(secret, 1, item.peer, context)
        key_share, seed_share = masking.open_share(key, item.ciphertext, 1, item.peer, context)
        holders.append(item.peer)
        key_shares.append(share_from_bytes(key_share))
        seed_shares.append(share_from_bytes(seed_share))
    t = aggregator.threshold
    (masking_private,) = reconstruct_secrets(holders[:t], np.stack(key_shares[:t])[:, None])
    (seed,) = reconstruct_secrets(holders[:t], np.stack(seed_shares[:t])[:, None])
    # the server forwards the real shares, ignores the digest client 1 echoes, and asks it to
    # mask with everyone
    out = intercept(h)
    h.clients[1].receive(out[1][0])
    h.clients[1].messages_to_send()
    h.clients[1].receive(aggregator.envelope(0, 1, MaskingSet(list(range(1, 7)))))
    (masked,) = [e.body for e in h.clients[1].messages_to_send()]
    fixed = aggregator.fixed_point
    words = unpack(masked.masked, aggregator.spec.vector_length + 1, fixed.modulus_bits,
                   fixed.dtype)
    masking.add_self_mask(words, seed, 1, context, -1, fixed.modulus_bits)
    for peer, (_, mask_fake) in fakes.items():
        pair_seed = agree(masking_private, mask_fake.public)
        masking.add_pairwise_mask(words, pair_seed, 1, peer, context,
                                  -masking.pairwise_sign(1, peer), fixed.modulus_bits)
    recovered = dequantize(words, modulus_bits=fixed.modulus_bits, scale=1.0)
    vector, weight = inputs[1]
    np.testing.assert_array_equal(recovered[:-1] / fixed.scale, vector * weight)
    assert recovered[-1] == weight  # the server learned client 1's input exactly


def test_malicious_mode_a_substituted_roster_is_refused(protocol):
    aggregator = make_malicious(7 if protocol == "secagg" else 9, seed=2, protocol=protocol)
    h = Harness(aggregator, grid_inputs(aggregator, 2))
    out = intercept(h)
    substitute_roster(out, 1, aggregator)
    h.deliver_to_clients(out)
    assert not any(e.sender == 1 for e in h.to_server)  # it sealed no share for anyone
    refused(h.clients[1], IntegrityError)


# ------------------------------------------------------------------ 2/3/5. different views


def at_consistency(n=7, seed=3, protocol="secagg"):
    aggregator = make_malicious(n if protocol == "secagg" else 9, seed=seed, protocol=protocol)
    inputs = grid_inputs(aggregator, seed)
    h = Harness(aggregator, inputs)
    run_to(h, "collect_masked")
    return aggregator, inputs, h, intercept(h)  # ConsistencyCheck(U3) for every survivor


def signed(h):
    """The consistency signatures the clients just sent, by signer."""
    signatures = {e.sender: e.body.signature for e in h.to_server}
    h.to_server = []
    return signatures


def request_for(aggregator, client, survivors, dropped, signatures, signers):
    """An unmask request to ``client`` shaped as the server would send it: its share holders
    among ``survivors``, its neighbours among ``dropped``, the signatures of ``signers``."""
    mine = holders(aggregator, client)
    return UnmaskRequest(sorted(mine & set(survivors)),
                         sorted(aggregator.graph.neighbours(client) & set(dropped)),
                         [SurvivorSignature(c, signatures[c]) for c in sorted(signers)])


def test_malicious_mode_different_survivor_sets_never_gather_t_signatures(protocol):
    aggregator, inputs, h, out = at_consistency(protocol=protocol)
    everyone = set(aggregator.spec.client_ids)
    victim, t = 1, aggregator.threshold
    hidden = peers(aggregator, victim)[-1]  # the set group A is shown leaves this client out
    group_a = [victim, *peers(aggregator, victim)[:t - 2]]  # t - 1 of the victim's holders
    for client in group_a:
        out[client][0] = msgspec.structs.replace(
            out[client][0], body=ConsistencyCheck(sorted(everyone - {hidden})))
    h.deliver_to_clients(out)
    signatures = signed(h)
    # unmask request to the victim with group A's signatures on its set: fewer than t
    request = request_for(aggregator, victim, everyone - {hidden}, [hidden], signatures, group_a)
    h.clients[victim].receive(msgspec.structs.replace(out[victim][0], body=request))
    refused(h.clients[victim], UnsafeRequest)
    # to another member of A, with A's signatures and the others' (on the true set) passed off
    # as signatures on A's set
    member = group_a[1]
    others = holders(aggregator, member) - {hidden}
    assert others - set(group_a) and len(others) >= t
    request = request_for(aggregator, member, everyone - {hidden}, [hidden], signatures, others)
    h.clients[member].receive(msgspec.structs.replace(out[member][0], recipient=member,
                                                      body=request))
    refused(h.clients[member], IntegrityError)


def test_malicious_mode_dropping_a_signed_survivor_to_ask_for_its_key_is_refused(protocol):
    aggregator, inputs, h, out = at_consistency(protocol=protocol)
    h.deliver_to_clients(out)
    signatures = signed(h)
    # everyone signed U3 = all; the server now claims a neighbour of 3 dropped and asks 3 for
    # its key shares, with every signature it holds
    target = peers(aggregator, 3)[-1]
    everyone = set(aggregator.spec.client_ids)
    request = request_for(aggregator, 3, everyone - {target}, [target], signatures,
                          holders(aggregator, 3))
    h.clients[3].receive(msgspec.structs.replace(out[3][0], body=request))
    refused(h.clients[3], UnsafeRequest)


def test_malicious_mode_both_shares_of_one_peer_are_refused(protocol):
    aggregator, inputs, h, out = at_consistency(protocol=protocol)
    h.deliver_to_clients(out)
    signatures = signed(h)
    target = peers(aggregator, 4)[-1]
    request = request_for(aggregator, 4, aggregator.spec.client_ids, [target], signatures,
                          holders(aggregator, 4))
    h.clients[4].receive(msgspec.structs.replace(out[4][0], body=request))
    refused(h.clients[4], UnsafeRequest)


def test_malicious_mode_honest_views_unmask(protocol):
    aggregator, inputs, h, out = at_consistency(protocol=protocol)
    h.deliver_to_clients(out)
    while not h.server.done:
        h.run_phase()
    expected, weight = exact_sum(aggregator, inputs, aggregator.spec.client_ids)
    np.testing.assert_array_equal(h.server.result().weighted_sum, expected)


# ------------------------------------------------------------------ 4. replays


def test_malicious_mode_replayed_roster_of_an_earlier_round_is_refused(protocol):
    n = 7 if protocol == "secagg" else 9
    earlier = make_malicious(n, seed=4, round_number=0, protocol=protocol)
    h0 = Harness(earlier, grid_inputs(earlier, 4))
    old_roster = intercept(h0)[1][0].body
    now = make_malicious(n, seed=4, round_number=1, protocol=protocol)
    h1 = Harness(now, grid_inputs(now, 4))
    out = intercept(h1)
    own = next(e for e in out[1][0].body.entries if e.client == 1)
    entries = [own if e.client == 1 else e for e in old_roster.entries]
    out[1][0] = msgspec.structs.replace(out[1][0], body=KeyRoster(entries))
    h1.deliver_to_clients(out)
    refused(h1.clients[1], IntegrityError)


def test_malicious_mode_replayed_survivor_signatures_are_refused(protocol):
    first, _, h0, out0 = at_consistency(seed=5, protocol=protocol)
    h0.deliver_to_clients(out0)
    old = signed(h0)
    n = first.spec.n_clients
    aggregator = make_malicious(n, seed=5, round_number=1, protocol=protocol)
    h = Harness(aggregator, grid_inputs(aggregator, 5))
    run_to(h, "collect_masked")
    out = intercept(h)
    h.deliver_to_clients(out)
    h.to_server = []
    # round 0's signatures in round 1
    request = request_for(aggregator, 2, aggregator.spec.client_ids, [], old,
                          holders(aggregator, 2))
    h.clients[2].receive(msgspec.structs.replace(out[2][0], body=request))
    refused(h.clients[2], IntegrityError)


# ------------------------------------------------------------------ 7. signatures


def test_malicious_mode_forged_or_missing_roster_signature_is_refused(protocol):
    aggregator = make_malicious(7 if protocol == "secagg" else 9, seed=6, protocol=protocol)
    h = Harness(aggregator, grid_inputs(aggregator, 6))
    out = intercept(h)
    for victim, forge in ((1, bytes(64)), (2, b"")):
        forged = peers(aggregator, victim)[-1]
        entries = [RosterEntry(e.client, e.encryption_public_key, e.masking_public_key, forge)
                   if e.client == forged else e for e in out[victim][0].body.entries]
        out[victim][0] = msgspec.structs.replace(out[victim][0], body=KeyRoster(entries))
    h.deliver_to_clients(out)
    refused(h.clients[1], IntegrityError)
    refused(h.clients[2], IntegrityError)


def test_malicious_mode_a_key_not_in_the_registry_is_refused():
    public, _ = identities(7)
    del public[6]  # client 6 never registered
    aggregator = make_malicious(7, seed=7, registry=public)
    h = Harness(aggregator, grid_inputs(aggregator, 7))
    h.deliver_to_server()
    dropped = [e.client for e in h.events(h.server) if type(e).__name__ == "ClientDropped"]
    assert dropped == [6]  # the server refuses its advertisement
    out = h.close_phase()
    # a server that forwards it anyway: every client refuses the roster
    entries = list(out[1][0].body.entries)
    h6 = make_malicious(7, seed=7)  # what client 6 would have advertised, signed
    h6h = Harness(h6, grid_inputs(h6, 7))
    six = intercept(h6h)[1][0].body.entries[5]
    roster = KeyRoster(sorted(entries + [six], key=lambda e: e.client))
    out[1][0] = msgspec.structs.replace(out[1][0], body=roster)
    h.deliver_to_clients(out)
    refused(h.clients[1], IntegrityError)


def test_malicious_mode_an_advertisement_signed_by_an_unregistered_key_is_refused(protocol):
    """Client 6 signs with a key the registry does not hold for it (SecAgg+ needs every
    cohort member registered, so this is how an unknown key reaches it)."""
    n = 7 if protocol == "secagg" else 9
    public, _ = identities(n)
    public[6] = identities(n, seed="not-registered")[0][6]
    aggregator = make_malicious(n, seed=7, registry=public, protocol=protocol)
    h = Harness(aggregator, grid_inputs(aggregator, 7))
    h.deliver_to_server()
    dropped = [e.client for e in h.events(h.server) if type(e).__name__ == "ClientDropped"]
    assert dropped == [6]
    out = h.close_phase()
    honest = make_malicious(n, seed=7, protocol=protocol)  # 6's advertisement, really signed
    rosters = intercept(Harness(honest, grid_inputs(honest, 7)))
    entry_of_six = next(e for envelopes in rosters.values() for e in envelopes[0].body.entries
                        if e.client == 6)
    victim = min(holders(aggregator, 6) - {6})
    roster = KeyRoster(sorted([*out[victim][0].body.entries, entry_of_six],
                              key=lambda e: e.client))
    out[victim][0] = msgspec.structs.replace(out[victim][0], body=roster)
    h.deliver_to_clients(out)
    refused(h.clients[victim], IntegrityError)


def test_malicious_mode_a_fabricated_complaint_opens_nothing(protocol):
    aggregator = make_malicious(7 if protocol == "secagg" else 9, seed=8, protocol=protocol)
    h = Harness(aggregator, grid_inputs(aggregator, 8))
    run_to(h, "collect_receipts")
    h.collect()
    # nobody complained: the server asks client 1 to open its share for a neighbour anyway
    h.clients[1].receive(aggregator.envelope(0, 1, OpenRequest([peers(aggregator, 1)[0]], [])))
    refused(h.clients[1], UnsafeRequest)
    assert not any(isinstance(e.body, (ShareOpenings, UnmaskShares)) for e in h.collect())


def test_hostile_clients_drop_only_themselves_in_malicious_mode_too(protocol):
    from tests.hostile import BEHAVIOURS

    for behaviour in sorted(BEHAVIOURS):
        aggregator = make_malicious(9, seed=9, hostile={4: BEHAVIOURS[behaviour]},
                                    protocol=protocol)
        inputs = grid_inputs(aggregator, 9)
        report = simulate_round(aggregator, inputs)
        assert report.error is None, (behaviour, report.error)
        dropped = {e.client for pid, e in report.events
                   if pid == 0 and type(e).__name__ == "ClientDropped"}
        assert dropped <= {4}, (behaviour, dropped)
        expected, weight = exact_sum(aggregator, inputs, report.result.survivors)
        np.testing.assert_array_equal(report.result.weighted_sum, expected)
        assert set(report.result.survivors) >= set(range(1, 10)) - {4}


def test_malformed_survivor_set_is_refused(protocol):
    aggregator, inputs, h, out = at_consistency(protocol=protocol)
    for client, survivors in ((1, [1, 1, 2, 3, 4, 5]), (2, [2, *range(3, 10), 99])):
        out[client][0] = msgspec.structs.replace(out[client][0],
                                                 body=ConsistencyCheck(survivors))
        h.clients[client].receive(out[client][0])
        refused(h.clients[client], MalformedMessage)
