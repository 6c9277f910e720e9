"""Property: up to n - t hostile clients, each with a behaviour drawn from ``tests.hostile``,
plus random dropouts at every phase.  Never an untyped exception; the result is the exact sum
of the honest survivors' inputs (U3), or a typed abort that happens only below threshold — or,
when more unmask shares are corrupted than decoding can correct, a typed ProtocolAborted.

The same hostile clients on SecAgg+'s sparse ring (semi-honest and malicious mode), where the
outcome depends on each neighbourhood: no honest client is ever blamed, every honest client
that neither fell silent nor gave up on its own neighbourhood is among the survivors, and the
result is the exact sum of the survivors or a typed abort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import InsufficientParticipants, ProtocolAborted
from fedsecure.protocols.base import AggregationSpec, ClientDropped, RoundAborted
from fedsecure.protocols.secagg import HararyGraph
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.hostile import BEHAVIOURS, HostileSecAgg, HostileSecAggPlus
from tests.secagg.helpers import CLIENT_TAGS, SESSION, exact_sum, grid_inputs
from tests.secagg.malicious_helpers import PLUS_DEGREE, PLUS_THRESHOLD, make_malicious


class Abort(Exception):
    """The model says: fewer than t remain here."""


def expected_outcome(n, t, hostile, silent, malicious=False):
    """(U3, corrupted shares, responders) by the protocol's rules, or raises Abort.  In
    malicious mode a rewritten message no longer matches its sender's signature, so garbage
    shares and false complaints are refused where they arrive."""
    def at(tag):
        return {c for c, s in silent.items() if s == tag}

    def need(group):
        if len(group) < t:
            raise Abort
        return group

    of = {name: {c for c, b in hostile.items() if b == name} for name in BEHAVIOURS}
    u1 = need(set(range(1, n + 1)) - at("AdvertiseKeys") - of["low_order_keys"])
    u2a = need(u1 - at("EncryptedShares") - (of["garbage_shares"] if malicious else set()))
    receipts = need(u2a - at("ShareReceipt") - (of["false_complaints"] if malicious else set()))
    accusers = {c: set() for c in receipts}
    for g in of["garbage_shares"] & u2a:
        for victim in sorted(u1 - {g})[:2]:
            if victim in receipts and g in receipts:
                accusers[g].add(victim)
    for f in of["false_complaints"] & receipts:
        for peer in (u2a - {f}) & receipts:
            accusers[peer].add(f)
    dropped = set()
    for accused, by in accusers.items():
        if not by:
            continue
        if len(by) >= t:
            dropped.add(accused)  # refuses to open that many
            continue
        victims = set(sorted(u1 - {accused})[:2]) if accused in of["garbage_shares"] else set()
        if by & victims:
            dropped.add(accused)
        dropped |= by - victims  # their complaints are refuted
    u2 = need(receipts - dropped)
    u3 = need(u2 - at("MaskedInput") - of["oversized_input"])
    signers = need(u3 - at("ConsistencySignature")) if malicious else u3
    responders = need(signers - at("UnmaskShares"))
    return sorted(u3), len(responders & of["corrupt_unmask_share"]), len(responders)


def hostile_aggregator(n, seed, hostile, *, malicious, protocol, threshold=None):
    """``protocol`` over clients 1..n, ``hostile`` mapping clients to behaviour names; SecAgg+
    on the ring of degree PLUS_DEGREE with PLUS_THRESHOLD unless ``threshold``."""
    behaviours = {c: BEHAVIOURS[b] for c, b in hostile.items()}
    if malicious:
        return make_malicious(n, seed=seed, hostile=behaviours, threshold=threshold,
                              protocol=protocol)
    spec = AggregationSpec(n_clients=n, vector_length=6, max_weight=4, session=SESSION)
    options = {"hostile": behaviours, "scale_bits": 8, "rng": DeterministicRandom(seed)}
    if protocol == "secagg":
        return HostileSecAgg(spec, threshold=threshold, **options)
    return HostileSecAggPlus(spec, degree=PLUS_DEGREE, threshold=threshold or PLUS_THRESHOLD,
                             **options)


def play(aggregator, seed, silent):
    """The round's inputs and its report, ``silent`` mapping clients to the message they never send."""
    inputs = grid_inputs(aggregator, seed)
    return inputs, simulate_round(aggregator, inputs,
                                  faults=[Silent(c, tag) for c, tag in silent.items()])


@st.composite
def scenarios(draw, malicious=False):
    n = draw(st.integers(4, 12))
    t = draw(st.integers((2 * n // 3 if malicious else n // 2) + 1, n))
    bad = draw(st.lists(st.integers(1, n), unique=True, max_size=n - t))
    hostile = {c: draw(st.sampled_from(sorted(BEHAVIOURS))) for c in bad}
    tags = CLIENT_TAGS + (("ConsistencySignature",) if malicious else ())
    silent = draw(st.dictionaries(st.integers(1, n), st.sampled_from(tags), max_size=n // 2))
    return n, t, hostile, silent, draw(st.integers(0, 2**32))


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_hostile_clients_only_drop_themselves(scenario):
    check_scenario(scenario, malicious=False)


@settings(max_examples=25, deadline=None)
@given(scenarios(malicious=True))
def test_hostile_clients_only_drop_themselves_in_malicious_mode(scenario):
    check_scenario(scenario, malicious=True)


def check_scenario(scenario, malicious):
    n, t, hostile, silent, seed = scenario
    aggregator = hostile_aggregator(n, seed, hostile, malicious=malicious, protocol="secagg",
                                    threshold=t)
    inputs, report = play(aggregator, seed, silent)
    try:
        survivors, corrupted, responders = expected_outcome(n, t, hostile, silent, malicious)
    except Abort:
        assert isinstance(report.error, InsufficientParticipants), report.error
        return
    if report.error is not None:
        assert corrupted > (responders - t) // 2, report.error
        assert isinstance(report.error, ProtocolAborted)
        return
    assert list(report.result.survivors) == survivors
    expected, weight = exact_sum(aggregator, inputs, survivors)
    np.testing.assert_array_equal(report.result.weighted_sum, expected)
    assert report.result.total_weight == weight


@st.composite
def sparse_scenarios(draw, malicious=False):
    n = draw(st.integers(7, 14))
    bad = draw(st.lists(st.integers(1, n), unique=True, max_size=2))
    hostile = {c: draw(st.sampled_from(sorted(BEHAVIOURS))) for c in bad}
    tags = CLIENT_TAGS + (("ConsistencySignature",) if malicious else ())
    silent = draw(st.dictionaries(st.integers(1, n), st.sampled_from(tags), max_size=2))
    return n, hostile, silent, draw(st.integers(0, 2**32))


@settings(max_examples=15, deadline=None)
@given(sparse_scenarios())
def test_hostile_clients_only_drop_themselves_on_the_sparse_graph(scenario):
    check_sparse_scenario(scenario, malicious=False)


@settings(max_examples=15, deadline=None)
@given(sparse_scenarios(malicious=True))
def test_hostile_clients_only_drop_themselves_on_the_sparse_graph_in_malicious_mode(scenario):
    check_sparse_scenario(scenario, malicious=True)


def check_sparse_scenario(scenario, malicious):
    n, hostile, silent, seed = scenario
    aggregator = hostile_aggregator(n, seed, hostile, malicious=malicious, protocol="secaggplus")
    assert isinstance(aggregator.graph, HararyGraph)
    inputs, report = play(aggregator, seed, silent)
    blamed = {e.client for pid, e in report.events
              if pid == 0 and isinstance(e, ClientDropped) and e.error is not None}
    assert blamed <= set(hostile), (blamed, hostile)
    if report.error is not None:
        assert isinstance(report.error, ProtocolAborted), report.error
        return
    survivors = set(report.result.survivors)
    gave_up = {pid for pid, e in report.events if pid != 0 and isinstance(e, RoundAborted)}
    honest = set(range(1, n + 1)) - set(hostile) - set(silent) - gave_up
    assert honest <= survivors, (honest - survivors)
    before_masking = set(CLIENT_TAGS[:4])
    assert not survivors & {c for c, tag in silent.items() if tag in before_masking}
    assert not survivors & {c for c, b in hostile.items()
                            if b in ("low_order_keys", "oversized_input")}
    expected, weight = exact_sum(aggregator, inputs, sorted(survivors))
    np.testing.assert_array_equal(report.result.weighted_sum, expected)
    assert report.result.total_weight == weight
