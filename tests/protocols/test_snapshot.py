"""Party snapshots: a client rebuilt from ``snapshot()`` before every message finishes the
round exactly as the same client kept alive would; a snapshot restores only into its own
party; undeclared state is refused rather than lost."""

from __future__ import annotations

import numpy as np
import pytest

from fedsecure.errors import LocalProtocolError
from fedsecure.messages import decode, encode
from tests.harness import Harness
from tests.secagg.helpers import exact_sum, grid_inputs, make_secagg


def reborn(aggregator, client):
    """A fresh party of the same aggregator and id, continuing from ``client.snapshot()``."""
    fresh = aggregator.client(client.party_id)
    fresh.restore(client.snapshot())  # only bytes pass from the old object to the new
    return fresh


def run_rebirthing(aggregator, inputs, *, skip_phase=None, skip=()):
    """Drive a round phase by phase; every client is rebuilt from its snapshot before each
    delivery.  Clients in ``skip`` fall silent from the ``skip_phase``-th phase on."""
    harness = Harness(aggregator, inputs)
    step = 0
    while not harness.server.done:
        harness.clients = {c: reborn(aggregator, p) for c, p in harness.clients.items()}
        silent = skip if skip_phase is not None and step >= skip_phase else ()
        harness.deliver_to_server(skip=silent)
        out = harness.close_phase()
        harness.clients = {c: reborn(aggregator, p) for c, p in harness.clients.items()}
        harness.deliver_to_clients(out, skip=silent)
        step += 1
    return harness


@pytest.mark.parametrize("skip_phase", [None, 0, 2, 3])
def test_secagg_clients_rebuilt_from_snapshots_every_message(skip_phase):
    aggregator = make_secagg(7, 13, seed=3)
    inputs = grid_inputs(aggregator, 3)
    harness = run_rebirthing(aggregator, inputs, skip_phase=skip_phase, skip=(2, 5))
    result = harness.server.result()
    expected_survivors = sorted(inputs) if skip_phase is None else [1, 3, 4, 6, 7]
    assert list(result.survivors) == expected_survivors
    expected, weight = exact_sum(aggregator, inputs, expected_survivors)
    np.testing.assert_array_equal(result.weighted_sum, expected)
    assert result.total_weight == weight


def test_ckks_clients_rebuilt_from_snapshots_every_message():
    pytest.importorskip("tenseal", reason="TenSEAL is not installed (pip install 'fedsecure[he]')")
    from tests.ckks.helpers import make_ckks, plain_mean, random_inputs

    aggregator = make_ckks(5, 30, seed=1)
    inputs = random_inputs(aggregator.spec, 1)
    harness = run_rebirthing(aggregator, inputs, skip_phase=2, skip=(4,))
    result = harness.server.result()
    assert list(result.survivors) == [1, 2, 3, 5]
    mean, weight = plain_mean(aggregator.spec, inputs, [1, 2, 3, 5])
    assert result.total_weight == weight
    np.testing.assert_allclose(result.mean, mean, atol=aggregator.quantization_error)


def test_snapshot_restores_only_into_its_own_party():
    aggregator = make_secagg(4, 3)
    inputs = grid_inputs(aggregator, 0)
    client = aggregator.client(1)
    client.set_input(*inputs[1])
    client.start()
    client.messages_to_send()
    data = client.snapshot()
    with pytest.raises(LocalProtocolError, match="does not belong"):
        aggregator.client(2).restore(data)
    with pytest.raises(LocalProtocolError, match="does not belong"):
        make_secagg(4, 3, round_number=1).client(1).restore(data)
    with pytest.raises(LocalProtocolError, match="not a SecAggClient snapshot"):
        aggregator.client(1).restore(data[:-3])
    restored = aggregator.client(1)
    restored.restore(data)
    with pytest.raises(LocalProtocolError, match="has started"):
        restored.restore(data)


def test_snapshot_refuses_unsent_messages_and_undeclared_state():
    aggregator = make_secagg(4, 3)
    client = aggregator.client(1)
    client.set_input(*grid_inputs(aggregator, 0)[1])
    client.start()
    with pytest.raises(LocalProtocolError, match="unsent messages"):
        client.snapshot()
    client.messages_to_send()
    client._new_field = 1
    with pytest.raises(LocalProtocolError, match="not declared"):
        client.snapshot()


def test_snapshot_is_no_pickle_and_holds_no_python_objects():
    aggregator = make_secagg(4, 3)
    client = aggregator.client(1)
    client.set_input(*grid_inputs(aggregator, 0)[1])
    client.start()
    envelope = decode(encode(client.messages_to_send()[0]))
    data = client.snapshot()
    assert b"pickle" not in data and not data.startswith(b"\x80")
    assert envelope.body.masking_public_key in data  # the public key, as raw bytes
