"""The random Harary graph: symmetric, k-regular, k-connected, identical for every party."""

import hashlib
import struct
from collections import deque

import numpy as np
import pytest
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError
from fedsecure.protocols.secagg import harary
from fedsecure.protocols.secagg.graph import NeighbourGraph
from fedsecure.protocols.secagg.harary import HararyGraph, derive_ring


@st.composite
def graphs(draw, max_clients=60):
    """Distinct client ids, an even degree in [2, n-1], a session and a round."""
    ids = draw(st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=max_clients, unique=True))
    degree = 2 * draw(st.integers(1, (len(ids) - 1) // 2))
    session = draw(st.binary(min_size=0, max_size=32))
    round_number = draw(st.integers(0, 2**64 - 1))
    return ids, degree, session, round_number


def build(case) -> HararyGraph:
    ids, degree, session, round_number = case
    return HararyGraph(ids, degree, session=session, round_number=round_number)


@settings(max_examples=80, deadline=None)
@given(case=graphs())
def test_graph_is_symmetric_k_regular_and_loop_free(case):
    graph = build(case)
    ids, degree = case[0], case[1]
    assert isinstance(graph, NeighbourGraph) and graph.n_clients == len(ids)
    for client in ids:
        mine = graph.neighbours(client)
        assert len(mine) == degree and client not in mine and mine <= set(ids)
        assert all(client in graph.neighbours(other) for other in mine)
        assert graph.share_holders(client) == mine | {client}


@settings(max_examples=80, deadline=None)
@given(case=graphs())
def test_neighbours_are_the_ring_positions_within_half_the_degree(case):
    graph = build(case)
    ring, half, n = graph.ring.tolist(), case[1] // 2, len(case[0])
    assert sorted(ring) == sorted(case[0])
    for position, client in enumerate(ring):
        assert graph.position(client) == position
        expected = {ring[(position + step) % n] for step in range(-half, half + 1) if step}
        assert graph.neighbours(client) == expected


@settings(max_examples=60, deadline=None)
@given(case=graphs(), data=st.data())
def test_every_party_derives_the_same_graph_whatever_order_it_lists_clients_in(case, data):
    ids, degree, session, round_number = case
    shuffled = data.draw(st.permutations(ids))
    mine = build(case)
    theirs = HararyGraph(np.array(shuffled, dtype=np.uint64), degree, session=session,
                         round_number=round_number)
    assert np.array_equal(mine.ring, theirs.ring)
    assert all(mine.neighbours(c) == theirs.neighbours(c) for c in ids)


@settings(max_examples=60, deadline=None)
@given(case=graphs(max_clients=30), data=st.data())
def test_removing_fewer_than_k_clients_never_disconnects_the_graph(case, data):
    """H(n, k) is k-connected (Harary): the survivors of any k - 1 removals stay connected."""
    graph = build(case)
    ids, degree = case[0], case[1]
    removed = set(data.draw(st.lists(st.sampled_from(ids), max_size=degree - 1, unique=True)))
    alive = [c for c in ids if c not in removed]
    seen, queue = {alive[0]}, deque([alive[0]])
    while queue:
        for other in graph.neighbours(queue.popleft()) - removed - seen:
            seen.add(other)
            queue.append(other)
    assert seen == set(alive)


def test_the_ring_depends_on_session_round_and_the_client_set():
    clients = list(range(1, 65))
    base = derive_ring(clients, session=bytes(16), round_number=1).tolist()
    assert base != sorted(base)
    others = [derive_ring(clients, session=b"\x01" + bytes(15), round_number=1),
              derive_ring(clients, session=bytes(16), round_number=2),
              derive_ring(clients[:-1] + [1000], session=bytes(16), round_number=1)]
    for other in others:
        common = set(base) & set(other.tolist())
        assert [c for c in base if c in common] != [c for c in other.tolist() if c in common]


def test_ring_positions_are_uniform_over_many_rounds():
    """Each client lands at each of 6 positions ~1/6 of the time (chi-square, 25 dof)."""
    counts = np.zeros((6, 6))
    rounds = 3000
    for round_number in range(rounds):
        ring = derive_ring(range(6), session=b"uniformity", round_number=round_number)
        counts[ring, np.arange(6)] += 1
    expected = rounds / 6
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 70  # P[chi2(25) > 70] < 1e-5


def test_large_graphs_hold_linear_memory_and_answer_locally():
    n = 200_000
    graph = HararyGraph(range(1, n + 1), 38, session=bytes(16), round_number=0)
    assert graph.ring.nbytes == 8 * n
    neighbours = graph.neighbours(12345)
    assert len(neighbours) == 38 and all(12345 in graph.neighbours(v) for v in neighbours)


@pytest.mark.parametrize("clients,degree", [
    (range(10), 3), (range(10), 0), (range(10), 10), (range(10), 12), (range(2), 2),
    ([1, 2, 2, 3, 4], 2), ([-1, 2, 3, 4], 2), ([1, 2, 2**32], 2), ([1.0, 2.0, 3.0], 2),
    (range(10), 4.0), (range(10), True),
])
def test_refuses_bad_clients_or_degree(clients, degree):
    with pytest.raises(ConfigurationError):
        HararyGraph(clients, degree, session=bytes(16), round_number=0)


@pytest.mark.parametrize("session,round_number", [("abc", 0), (bytes(16), -1), (bytes(16), 2**64),
                                                  (bytes(16), 1.5)])
def test_refuses_bad_round_data(session, round_number):
    with pytest.raises(ConfigurationError):
        derive_ring(range(5), session=session, round_number=round_number)


def test_refuses_a_client_outside_the_graph():
    graph = HararyGraph([3, 5, 7, 9], 2, session=bytes(16), round_number=0)
    for stranger in (0, 4, 10):
        with pytest.raises(ConfigurationError):
            graph.neighbours(stranger)


@settings(max_examples=30, deadline=None)
@given(case=graphs())
def test_ring_follows_the_spec_written_out_with_another_library(case):
    """SPEC "Graph derivation" step by step with hashlib, pycryptodome HKDF and AES-CTR."""
    ids, _, session, round_number = case
    ordered = sorted(ids)
    seed = hashlib.sha256(
        b"fedsecure/secaggplus/v1/harary-graph" + struct.pack("<I", len(session)) + session
        + struct.pack("<QI", round_number, len(ids))
        + b"".join(struct.pack("<I", c) for c in ordered)).digest()
    key = HKDF(seed, 32, b"", SHA256, context=b"fedsecure/v1/mask-prg\x00harary-graph")
    stream = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=bytes(16)).encrypt(
        bytes(8 * len(ids)))
    keys = struct.unpack(f"<{len(ids)}Q", stream)
    expected = [c for _, c in sorted(zip(keys, ordered))]
    assert derive_ring(ids, session=session, round_number=round_number).tolist() == expected


def test_equal_keys_are_ordered_by_client_id(monkeypatch):
    """A 64-bit key collision (probability < n^2 / 2^65) is broken by the id, as the SPEC says."""
    keys = np.array([5, 1, 5, 0, 1, 5], dtype=np.uint64)
    monkeypatch.setattr(harary, "expand", lambda seed, context, count, dtype: keys)
    ring = derive_ring([60, 50, 40, 30, 20, 10], session=b"", round_number=0)
    assert ring.tolist() == [40, 20, 50, 10, 30, 60]  # ids ascending carry keys 5 1 5 0 1 5


def test_a_registry_seed_binds_every_key_and_the_nonce_and_nothing_else():
    keys = {c: hashlib.sha256(bytes([c])).digest() for c in range(1, 21)}
    nonce = hashlib.sha256(b"registrar").digest()
    seed = harary.registry_graph_seed(keys, nonce)
    assert harary.registry_graph_seed(dict(reversed(list(keys.items()))), nonce) == seed
    changed = [harary.registry_graph_seed(keys | {7: bytes(32)}, nonce),
               harary.registry_graph_seed(keys, bytes(32)),
               harary.registry_graph_seed({c + 1: k for c, k in keys.items()}, nonce)]
    assert len({seed, *changed}) == 4
    graph = HararyGraph(keys, 6, seed=seed)
    assert graph.seed == seed and sorted(graph.ring.tolist()) == sorted(keys)
    assert graph.ring.tolist() != HararyGraph(keys, 6, seed=changed[1]).ring.tolist()


@pytest.mark.parametrize("options", [{}, {"seed": bytes(32), "session": bytes(16)},
                                     {"seed": bytes(31)}, {"seed": "00" * 32}])
def test_refuses_a_missing_double_or_bad_seed(options):
    with pytest.raises(ConfigurationError):
        HararyGraph(range(10), 4, **options)


@pytest.mark.parametrize("nonce,key", [(bytes(31), bytes(32)), (None, bytes(32)),
                                       (bytes(32), bytes(33))])
def test_refuses_a_bad_registry(nonce, key):
    with pytest.raises(ConfigurationError):
        harary.registry_graph_seed({1: key, 2: key, 3: key}, nonce)
