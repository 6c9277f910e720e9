"""Shared fixtures of the training tests: one torch thread, small datasets and a fake aggregator."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests share a 2-core machine: keep torch on one thread (and results reproducible)."""
    try:
        import torch
    except ModuleNotFoundError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def exact_mean_aggregate(calls: list | None = None):
    """An aggregation function computing the exact weighted sum in the clear (a test double
    for ``fedsecure.fl.server.secure_aggregate``); records each call's arguments."""
    from fedsecure.fl.server import AggregationReport
    from fedsecure.protocols.base import AggregateResult

    def aggregate(protocol, spec, inputs, *, options, deadline_s, stragglers=()):
        if calls is not None:
            calls.append({"protocol": protocol, "spec": spec, "inputs": dict(inputs),
                          "options": options, "deadline_s": deadline_s})
        ids = tuple(sorted(inputs))
        total = sum(inputs[i][0] * inputs[i][1] for i in ids)
        return AggregationReport(
            result=AggregateResult(weighted_sum=np.asarray(total, dtype=np.float64),
                                   total_weight=float(sum(inputs[i][1] for i in ids)),
                                   survivors=ids, dropped=()),
            error=None, phase_seconds={"server:sum": 0.001}, bytes_total=8 * len(ids))

    return aggregate
