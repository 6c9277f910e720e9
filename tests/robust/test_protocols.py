"""The robust protocols behind the one Aggregator interface: ``robust`` (per-client rule at a
plaintext server) and ``grouped`` (secure group sums, a rule across them), run by the same
simulation driver as every other protocol."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError, InsufficientParticipants
from fedsecure.messages import ArrayPayload, PlainUpdate, decode, encode
from fedsecure.protocols.base import AggregationSpec, ClientDropped, make_aggregator
from fedsecure.protocols.grouped import GroupedAggregator, GroupedClient, GroupRejected
from fedsecure.protocols.robust import RobustResult
from fedsecure.rng import DeterministicRandom
from fedsecure.robust import make_rule
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.harness import Harness

SESSION = bytes(range(16))


def _spec(n=12, d=16, **changes):
    return AggregationSpec(n_clients=n, vector_length=d, clip=1.0, session=SESSION,
                           **changes)


def _inputs(spec, *, bad=(), seed=0):
    rng = np.random.default_rng(seed)
    inputs = {c: (rng.normal(0.2, 0.02, spec.vector_length), 1) for c in spec.client_ids}
    for c in bad:
        inputs[c] = (np.full(spec.vector_length, -1.0), 1)
    return inputs


def test_robust_protocol_applies_the_rule_to_each_clients_update():
    spec = _spec()
    inputs = _inputs(spec, bad=(3, 8))
    report = simulate_round(make_aggregator("robust", spec, rule="multi-krum", f=2), inputs)
    result = report.result
    assert isinstance(result, RobustResult) and report.error is None
    expected = make_rule("multi-krum", f=2)(np.stack([inputs[c][0] for c in spec.client_ids]))
    assert np.allclose(result.mean, expected.aggregate)
    assert set(result.with_status("rejected")) == {(3,), (8,)}
    assert {v.members for v in result.verdicts if v.flagged} == {(3,), (8,)}


def test_robust_protocol_default_f_is_what_the_rule_withstands_at_min_clients():
    agg = make_aggregator("robust", _spec(n=12), rule="krum")
    assert agg.rule.f == 2  # min_clients 7 > 2f + 2
    with pytest.raises(ConfigurationError, match="n > 2f \\+ 2"):
        make_aggregator("robust", _spec(n=12), rule="krum", f=5)


def test_robust_round_aborts_when_dropouts_leave_too_few_for_the_rule():
    spec = _spec(n=8, min_clients=2)
    silent = [Silent(c, "PlainUpdate") for c in (1, 2, 3, 4)]
    report = simulate_round(make_aggregator("robust", spec, rule="krum", f=2), _inputs(spec),
                            faults=silent)
    assert isinstance(report.error, InsufficientParticipants)


def test_all_parties_derive_the_same_public_groups_and_a_new_session_changes_them():
    a = make_aggregator("grouped", _spec(n=20), groups=4)
    b = make_aggregator("grouped", _spec(n=20), groups=4)
    assert a.members == b.members
    assert sorted(c for g in a.members for c in g) == list(range(1, 21))
    assert sorted(len(g) for g in a.members) == [5, 5, 5, 5]
    other = make_aggregator("grouped", AggregationSpec(n_clients=20, vector_length=16,
                                                        session=bytes(16)), groups=4)
    assert other.members != a.members


@pytest.mark.parametrize("inner", ["plaintext", "secagg"])
def test_grouped_result_is_the_rule_over_the_group_means(inner):
    spec = _spec(n=12)
    inputs = _inputs(spec, bad=(5,))
    agg = make_aggregator("grouped", spec, inner=inner, groups=4, rule="median",
                          rng=DeterministicRandom(1))
    report = simulate_round(agg, inputs)
    assert report.error is None
    means = np.stack([np.mean([inputs[c][0] for c in g], axis=0) for g in agg.members])
    expected = make_rule("median", f=1)(means).aggregate
    assert np.allclose(report.result.mean, expected, atol=2 * agg.quantization_error + 1e-12)
    bad_group = next(g for g in agg.members if 5 in g)
    verdict = next(v for v in report.result.verdicts if v.members == bad_group)
    assert verdict.status == "rejected"


def test_a_group_that_loses_its_threshold_is_rejected_and_the_round_goes_on():
    spec = _spec(n=12, min_clients=6)
    agg = make_aggregator("grouped", spec, groups=4, rule="median", f=1)
    victim = agg.members[2]
    faults = [Silent(c, "MaskedInput") for c in victim[:2]]  # 1 of 3 left, threshold 2
    events = []
    report = simulate_round(agg, _inputs(spec), faults=faults,
                            on_event=lambda pid, e: events.append(e))
    assert report.error is None
    assert victim not in {v.members for v in report.result.verdicts if v.status != "rejected"}
    assert any(isinstance(e, GroupRejected) and e.members == victim for e in events)
    dropped = {e.client for e in events if isinstance(e, ClientDropped)}
    assert set(victim[:2]) <= dropped  # renamed to client ids
    assert not set(victim) & set(report.result.survivors)


def test_dropouts_inside_a_group_are_recovered_by_the_inner_protocol():
    spec = _spec(n=12)
    agg = make_aggregator("grouped", spec, groups=2, rule="mean")
    gone = agg.members[0][0]
    inputs = _inputs(spec)
    report = simulate_round(agg, inputs, faults=[Silent(gone, "MaskedInput")])
    assert gone in report.result.dropped
    means = [np.mean([inputs[c][0] for c in g if c != gone], axis=0) for g in agg.members]
    assert np.allclose(report.result.mean, np.mean(means, axis=0),
                       atol=2 * agg.quantization_error)


class _Cheater(GroupedClient):
    """A malicious client that skips the norm bound before masking."""

    def set_input(self, vector, weight=1):
        self.inner.set_input(vector, weight)


class _WithCheater(GroupedAggregator):
    cheater = 4

    def client(self, client_id, *, rng=None):
        if client_id == self.cheater:
            return _Cheater(self, client_id, rng or self.rng)
        return super().client(client_id, rng=rng)


def test_norm_bound_under_masking_rejects_a_group_whose_sum_breaks_it():
    spec = _spec(n=12, d=64)
    agg = _WithCheater(spec, groups=3, rule="mean", max_norm=0.5)
    inputs = _inputs(spec)
    inputs[4] = (np.full(64, 1.0), 1)  # norm 8, sixteen times the bound
    report = simulate_round(agg, inputs)
    (rejected,) = [v for v in report.result.verdicts if v.status == "rejected"]
    assert 4 in rejected.members and "norm" in rejected.reason
    honest = [g for g in agg.members if 4 not in g]
    scaled = {c: inputs[c][0] * min(1, 0.5 / np.linalg.norm(inputs[c][0])) for c in spec.client_ids}
    expected = np.mean([np.mean([scaled[c] for c in g], axis=0) for g in honest], axis=0)
    assert np.allclose(report.result.mean, expected, atol=2 * agg.quantization_error)


def test_norm_bound_under_masking_cannot_see_a_cheater_hidden_in_its_groups_slack():
    """What the aggregate check cannot do: a cheater whose excess fits in the honest members'
    unused norm budget passes (per-client proofs would be needed)."""
    spec = _spec(n=12, d=64)
    agg = _WithCheater(spec, groups=1, rule="mean", max_norm=1.0)
    inputs = {c: (np.zeros(64), 1) for c in spec.client_ids}
    inputs[4] = (np.full(64, 1.0), 1)  # norm 8 > 1, but the sum's norm 8 <= 12 * 1
    report = simulate_round(agg, inputs)
    assert report.error is None
    assert report.result.verdicts[0].status == "kept"


def test_impossible_and_invalid_combinations_are_refused_with_the_alternative():
    spec = _spec(n=12)
    with pytest.raises(ConfigurationError, match="groups >= 5.*max_norm.*'robust'"):
        make_aggregator("grouped", spec, groups=1, rule="krum")
    with pytest.raises(ConfigurationError, match="groups=7"):
        make_aggregator("grouped", spec, groups=7)
    with pytest.raises(ConfigurationError, match="inner"):
        make_aggregator("grouped", spec, inner="robust", groups=2)
    with pytest.raises(ConfigurationError, match="bulyan.*at least 7 inputs"):
        make_aggregator("grouped", spec, groups=6, rule="bulyan", f=1)
    make_aggregator("grouped", spec, groups=1, rule="mean", max_norm=1.0)


def test_an_envelope_of_another_session_drops_its_sender_and_aborts_a_client():
    spec = _spec(n=8)
    agg = make_aggregator("grouped", spec, groups=2, rule="mean")
    server, client = agg.server(), agg.client(1)
    server.start()
    client.set_input(np.zeros(spec.vector_length))
    client.start()
    (envelope,) = [decode(encode(e)) for e in client.messages_to_send()]
    server.receive(msgspec.structs.replace(envelope, session=bytes(16)))
    events = []
    while (event := server.next_event()) is not None:
        events.append(event)
    assert any(isinstance(e, ClientDropped) and e.client == 1 for e in events)
    reply = agg.envelope(0, 1, envelope.body)
    client.receive(msgspec.structs.replace(reply, session=bytes(16)))
    assert client.phase == "aborted"


def test_grouped_round_below_min_clients_aborts():
    spec = _spec(n=12, min_clients=10)
    agg = make_aggregator("grouped", spec, groups=4, rule="median", f=1)
    faults = [Silent(c, "MaskedInput") for c in agg.members[0][:2]]
    report = simulate_round(agg, _inputs(spec), faults=faults)
    assert isinstance(report.error, InsufficientParticipants)


@settings(max_examples=25)
@given(data=st.data())
def test_grouped_aggregate_is_the_rule_over_surviving_group_means_for_any_dropouts(data):
    """Random groups count, rule and dropout set (each dropout silent from a random SecAgg
    phase on): every group that keeps its threshold contributes the mean of its survivors."""
    n = data.draw(st.integers(6, 12))
    groups = data.draw(st.integers(2, n // 3))
    rule = data.draw(st.sampled_from(["mean", "median", "trimmed-mean", "geometric-median"]))
    spec = _spec(n=n, d=4, min_clients=1)
    agg = make_aggregator("grouped", spec, groups=groups, rule=rule, f=0,
                          rng=DeterministicRandom(data.draw(st.integers(0, 99))))
    inputs = _inputs(spec, seed=data.draw(st.integers(0, 99)))
    gone = data.draw(st.lists(st.sampled_from(list(spec.client_ids)), unique=True,
                              max_size=n // 3))
    tags = ("AdvertiseKeys", "EncryptedShares", "MaskedInput", "UnmaskShares")
    faults = [Silent(c, data.draw(st.sampled_from(tags))) for c in gone]
    report = simulate_round(agg, inputs, faults=faults)
    assert report.error is None, report.error
    kept = [v.members for v in report.result.verdicts if not v.reason]  # the rule's inputs
    assert sorted(c for members in kept for c in members) == list(report.result.survivors)
    means = np.stack([np.mean([inputs[c][0] for c in members], axis=0) for members in kept])
    expected = make_rule(rule, f=0)(means).aggregate
    assert np.allclose(report.result.mean, expected, atol=2 * agg.quantization_error + 1e-9)


@pytest.mark.parametrize("rule", ["median", "krum", "geometric-median", "centered-clipping"])
@pytest.mark.parametrize("value", [1e30, np.inf])
def test_a_hostile_client_bypassing_client_side_clipping_is_outvoted_or_dropped(rule, value):
    """A client that writes its own PlainUpdate (huge float32 values, no clipping) cannot
    crash the robust server or move the result out of the honest range; one that sends
    non-finite values is dropped as malformed."""
    spec = _spec(n=9)
    inputs = _inputs(spec)
    harness = Harness(make_aggregator("robust", spec, rule=rule, f=2), inputs)
    harness.to_server = [
        msgspec.structs.replace(e, body=PlainUpdate(
            weighted_update=ArrayPayload.pack(np.full(spec.vector_length, value, np.float32)),
            weight=1.0))
        if e.sender == 4 else e for e in harness.to_server]
    result = harness.run_to_end().result()
    assert (4 in result.dropped) == (value == np.inf)
    honest = np.stack([inputs[c][0] for c in spec.client_ids if c != 4])
    assert np.all(result.mean >= honest.min(axis=0) - 0.5)
    assert np.all(result.mean <= honest.max(axis=0) + 0.5)
