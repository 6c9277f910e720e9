"""Malicious-server mode: a scripted adversarial server drives honest clients through each
attack of the issue.  In malicious mode every attack is refused with a typed error and the
attacked client sends nothing that could unmask it; in semi-honest mode the key-substitution
attack is shown to recover an input exactly (docs/threat-model.md lists what that mode leaves
open)."""

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
from fedsecure.kernels import dequantize, reduce_into, unpack
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
from fedsecure.protocols.secagg import masking
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.harness import Harness
from tests.secagg.helpers import SESSION, exact_sum, grid_inputs, make_secagg
from tests.secagg.malicious_helpers import identities, make_malicious


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


# ------------------------------------------------------------------ configuration


def test_malicious_mode_needs_identities_and_a_two_thirds_threshold():
    spec = AggregationSpec(n_clients=9, vector_length=4, session=SESSION)
    with pytest.raises(ConfigurationError, match="IdentityRegistry"):
        make_aggregator("secagg", spec, security="malicious")
    public, _ = identities(9)
    with pytest.raises(ConfigurationError, match="floor\\(2n/3\\) \\+ 1 = 7"):
        make_aggregator("secagg", spec, security="malicious", identities=public, threshold=5)
    assert make_aggregator("secagg", spec, security="malicious", identities=public).threshold == 7
    with pytest.raises(ConfigurationError, match="semi-honest only"):
        make_aggregator("secaggplus", spec, security="malicious")


@pytest.mark.parametrize("silent", [{}, {2: "ShareReceipt", 5: "ConsistencySignature"},
                                    {3: "MaskedInput"}, {9: "UnmaskShares"}])
def test_an_honest_malicious_mode_round_is_exact(silent):
    aggregator = make_malicious(9, seed=1)
    inputs = grid_inputs(aggregator, 1)
    report = simulate_round(aggregator, inputs, faults=[Silent(c, t) for c, t in silent.items()])
    assert report.error is None, report.error
    gone = {c for c, tag in silent.items() if tag in ("ShareReceipt", "MaskedInput")}
    survivors = report.result.survivors
    assert set(survivors) == set(range(1, 10)) - gone
    expected, weight = exact_sum(aggregator, inputs, survivors)
    np.testing.assert_array_equal(report.result.weighted_sum, expected)
    assert report.result.total_weight == weight


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
    masking.add_self_mask(words, seed, 1, context, -1)
    for peer, (_, mask_fake) in fakes.items():
        pair_seed = agree(masking_private, mask_fake.public)
        masking.add_pairwise_mask(words, pair_seed, 1, peer, context,
                                  -masking.pairwise_sign(1, peer))
    reduce_into(words, fixed.modulus_bits)
    recovered = dequantize(words, modulus_bits=fixed.modulus_bits, scale=1.0)
    vector, weight = inputs[1]
    np.testing.assert_array_equal(recovered[:-1] / fixed.scale, vector * weight)
    assert recovered[-1] == weight  # the server learned client 1's input exactly


def test_malicious_mode_a_substituted_roster_is_refused():
    aggregator = make_malicious(7, seed=2)
    h = Harness(aggregator, grid_inputs(aggregator, 2))
    out = intercept(h)
    substitute_roster(out, 1, aggregator)
    h.deliver_to_clients(out)
    assert not any(e.sender == 1 for e in h.to_server)  # it sealed no share for anyone
    refused(h.clients[1], IntegrityError)


# ------------------------------------------------------------------ 2/3/5. different views


def at_consistency(n=7, seed=3):
    aggregator = make_malicious(n, seed=seed)
    inputs = grid_inputs(aggregator, seed)
    h = Harness(aggregator, inputs)
    run_to(h, "collect_masked")
    return aggregator, inputs, h, intercept(h)  # ConsistencyCheck(U3) for every survivor


def test_malicious_mode_different_survivor_sets_never_gather_t_signatures():
    aggregator, inputs, h, out = at_consistency()
    group_a, group_b = [1, 2, 3], [4, 5, 6, 7]
    for client in group_a:  # the server shows group A a set without client 7
        envelope = out[client][0]
        out[client][0] = msgspec.structs.replace(envelope, body=ConsistencyCheck(group_a + group_b[:3]))
    h.deliver_to_clients(out)
    signatures = {e.sender: e.body.signature for e in h.to_server}
    h.to_server = []
    # unmask request to A with A's signatures on its set: fewer than t
    request = UnmaskRequest([1, 2, 3, 4, 5, 6], [7], [SurvivorSignature(c, signatures[c])
                                                     for c in group_a])
    envelope = msgspec.structs.replace(out[1][0], body=request)
    h.clients[1].receive(envelope)
    refused(h.clients[1], UnsafeRequest)
    # with B's signatures (on the other set) passed off as signatures on A's set
    request = UnmaskRequest([1, 2, 3, 4, 5, 6], [7],
                            [SurvivorSignature(c, signatures[c]) for c in [2, 3, 4, 5, 6]])
    h.clients[2].receive(msgspec.structs.replace(out[2][0], recipient=2, body=request))
    refused(h.clients[2], IntegrityError)


def test_malicious_mode_dropping_a_signed_survivor_to_ask_for_its_key_is_refused():
    aggregator, inputs, h, out = at_consistency()
    h.deliver_to_clients(out)
    signatures = [SurvivorSignature(e.sender, e.body.signature) for e in h.to_server]
    h.to_server = []
    # everyone signed U3 = 1..7; the server now claims 7 dropped and asks for its key shares
    request = UnmaskRequest([1, 2, 3, 4, 5, 6], [7], signatures)
    h.clients[3].receive(msgspec.structs.replace(out[3][0], body=request))
    refused(h.clients[3], UnsafeRequest)


def test_malicious_mode_both_shares_of_one_peer_are_refused():
    aggregator, inputs, h, out = at_consistency()
    h.deliver_to_clients(out)
    signatures = [SurvivorSignature(e.sender, e.body.signature) for e in h.to_server]
    request = UnmaskRequest(list(range(1, 8)), [7], signatures)
    h.clients[4].receive(msgspec.structs.replace(out[4][0], body=request))
    refused(h.clients[4], UnsafeRequest)


def test_malicious_mode_honest_views_unmask():
    aggregator, inputs, h, out = at_consistency()
    h.deliver_to_clients(out)
    while not h.server.done:
        h.run_phase()
    expected, weight = exact_sum(aggregator, inputs, range(1, 8))
    np.testing.assert_array_equal(h.server.result().weighted_sum, expected)


# ------------------------------------------------------------------ 4. replays


def test_malicious_mode_replayed_roster_of_an_earlier_round_is_refused():
    earlier = make_malicious(7, seed=4, round_number=0)
    h0 = Harness(earlier, grid_inputs(earlier, 4))
    old_roster = intercept(h0)[1][0].body
    now = make_malicious(7, seed=4, round_number=1)
    h1 = Harness(now, grid_inputs(now, 4))
    out = intercept(h1)
    own = next(e for e in out[1][0].body.entries if e.client == 1)
    entries = [own if e.client == 1 else e for e in old_roster.entries]
    out[1][0] = msgspec.structs.replace(out[1][0], body=KeyRoster(entries))
    h1.deliver_to_clients(out)
    refused(h1.clients[1], IntegrityError)


def test_malicious_mode_replayed_survivor_signatures_are_refused():
    first, _, h0, out0 = at_consistency(seed=5)
    h0.deliver_to_clients(out0)
    old = [SurvivorSignature(e.sender, e.body.signature) for e in h0.to_server]
    aggregator = make_malicious(7, seed=5, round_number=1)
    h = Harness(aggregator, grid_inputs(aggregator, 5))
    run_to(h, "collect_masked")
    out = intercept(h)
    h.deliver_to_clients(out)
    h.to_server = []
    request = UnmaskRequest(list(range(1, 8)), [], old)  # round 0's signatures in round 1
    h.clients[2].receive(msgspec.structs.replace(out[2][0], body=request))
    refused(h.clients[2], IntegrityError)


# ------------------------------------------------------------------ 7. signatures


def test_malicious_mode_forged_or_missing_roster_signature_is_refused():
    aggregator = make_malicious(7, seed=6)
    h = Harness(aggregator, grid_inputs(aggregator, 6))
    out = intercept(h)
    for victim, forge in ((1, bytes(64)), (2, b"")):
        entries = [RosterEntry(e.client, e.encryption_public_key, e.masking_public_key, forge)
                   if e.client == 5 else e for e in out[victim][0].body.entries]
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


def test_malicious_mode_a_fabricated_complaint_opens_nothing():
    aggregator = make_malicious(7, seed=8)
    h = Harness(aggregator, grid_inputs(aggregator, 8))
    run_to(h, "collect_receipts")
    h.collect()
    # nobody complained: the server asks client 1 to open its share for client 2 anyway
    h.clients[1].receive(aggregator.envelope(0, 1, OpenRequest([2], [])))
    refused(h.clients[1], UnsafeRequest)
    assert not any(isinstance(e.body, (ShareOpenings, UnmaskShares)) for e in h.collect())


def test_hostile_clients_drop_only_themselves_in_malicious_mode_too():
    from tests.hostile import BEHAVIOURS

    for behaviour in sorted(BEHAVIOURS):
        aggregator = make_malicious(9, seed=9, hostile={4: BEHAVIOURS[behaviour]})
        inputs = grid_inputs(aggregator, 9)
        report = simulate_round(aggregator, inputs)
        assert report.error is None, (behaviour, report.error)
        dropped = {e.client for pid, e in report.events
                   if pid == 0 and type(e).__name__ == "ClientDropped"}
        assert dropped <= {4}, (behaviour, dropped)
        expected, weight = exact_sum(aggregator, inputs, report.result.survivors)
        np.testing.assert_array_equal(report.result.weighted_sum, expected)
        assert set(report.result.survivors) >= set(range(1, 10)) - {4}


def test_malformed_survivor_set_is_refused():
    aggregator, inputs, h, out = at_consistency()
    out[1][0] = msgspec.structs.replace(out[1][0], body=ConsistencyCheck([1, 1, 2, 3, 4, 5]))
    h.clients[1].receive(out[1][0])
    refused(h.clients[1], MalformedMessage)
