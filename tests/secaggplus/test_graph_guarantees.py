"""Monte Carlo on the real graphs: the finder's bounds hold for the rings parties derive.

At weak targets (sigma = eta = 5) the bad events are frequent enough to count.  Each trial is
a new round (a new ring) with a fresh corrupt set and dropout set, as the analysis assumes;
the observed rates must stay below the finder's union bounds, while a degree well below the
chosen one visibly breaks them (so the test can fail).
"""

from collections import deque

import numpy as np

from fedsecure.protocols.secagg.harary import HararyGraph
from fedsecure.protocols.secagg.parameters import find_graph_parameters

N, CORRUPT, DROPOUT, TRIALS = 200, 0.2, 0.1, 300


def connected(graph: HararyGraph, alive: set[int]) -> bool:
    start = next(iter(alive))
    seen, queue = {start}, deque([start])
    while queue:
        for other in graph.neighbours(queue.popleft()) & alive - seen:
            seen.add(other)
            queue.append(other)
    return seen == alive


def bad_event_rates(degree: int, threshold: int) -> tuple[float, float]:
    """(leaks, failures) over TRIALS rounds: the fraction of rounds with each bad event."""
    picker = np.random.default_rng(17)  # test data: which clients are corrupt / drop out
    leaks = failures = 0
    for trial in range(TRIALS):
        graph = HararyGraph(range(N), degree, session=b"monte-carlo", round_number=trial)
        shuffled = picker.permutation(N).tolist()
        corrupt = set(shuffled[:int(CORRUPT * N)])
        dropped = set(shuffled[int(CORRUPT * N):int((CORRUPT + DROPOUT) * N)])
        honest_survivors = set(range(N)) - corrupt - dropped
        neighbourhoods = [graph.neighbours(c) for c in range(N)]
        leaks += not connected(graph, honest_survivors) or \
            any(len(ns & corrupt) >= threshold for ns in neighbourhoods)
        failures += any(len(ns - dropped) < threshold for ns in neighbourhoods)
    return leaks / TRIALS, failures / TRIALS


def test_observed_bad_events_stay_below_the_reported_bounds():
    found = find_graph_parameters(N, corrupt_fraction=CORRUPT, dropout_fraction=DROPOUT,
                                  security_bits=5, correctness_bits=5)
    leaks, failures = bad_event_rates(found.degree, found.threshold)
    # Binomial slack: P[Bin(300, p) > 300 p + 12] < 1e-4 for the p <= 2^-5 at stake here.
    assert leaks <= 2.0 ** -found.security_bits + 12 / TRIALS
    assert failures <= 2.0 ** -found.correctness_bits + 12 / TRIALS


def test_a_much_smaller_degree_breaks_the_bounds():
    found = find_graph_parameters(N, corrupt_fraction=CORRUPT, dropout_fraction=DROPOUT,
                                  security_bits=5, correctness_bits=5)
    degree = found.degree - 8
    leaks, failures = bad_event_rates(degree, threshold=degree // 2 + 1)
    assert max(leaks, failures) > 2.0 ** -5 + 12 / TRIALS
