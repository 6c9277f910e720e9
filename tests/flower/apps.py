"""The ClientApp of the Flower tests, in an importable module: Ray workers import it by name
(run the tests with the repository root on PYTHONPATH).

Injected faults, by (protocol or None for all, round, client id):

* ``FAIL_AT_TRAIN`` raises when asked to train (the round's first message);
* ``FAIL_MID_ROUND`` raises on its second fedsecure message (after advertising keys);
* ``SLOW`` does not answer its ``call``-th fedsecure message in time: it blocks until the server
  has dropped it (the server writes ``released(...)`` when it reports ``ClientDropped`` for it),
  so the phase deadline passes however loaded the machine is, and then replies late.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.compat.common.recorddict_compat import fitres_to_recorddict

from fedsecure.runtime.flower import LEGACY_FITINS, fedsecure_mod, setup_of

NODES, ROUNDS, D = 10, 3, 40
FAIL_AT_TRAIN = {(None, 2, 3)}
FAIL_MID_ROUND = {(None, 3, 5)}
# secagg / secaggplus: call 4 answers MaskingSet with the masked input (calls 1-3: keys, shares,
# share receipt), so the server must recover the slow node's pairwise masks; ckks: call 2 is the
# encrypted update of a client that is not the key holder (its update is just absent)
SLOW = {("secagg", 2, 4): 4, ("secaggplus", 2, 7): 4, ("ckks", 2, 6): 2}
RELEASE_DIR = "FEDSECURE_FLOWER_TEST_DIR"  # environment variable: where release files go
MAX_BLOCK_S = 300.0  # a slow node gives up waiting for its release after this long


def faulty(faults, protocol: str, server_round: int) -> set[int]:
    return {c for p, r, c in faults if p in (None, protocol) and r == server_round}


def released(protocol: str, server_round: int, client: int) -> Path:
    return Path(os.environ[RELEASE_DIR]) / f"released-{protocol}-{server_round}-{client}"


def update_of(node_id: int, server_round: int) -> tuple[np.ndarray, int]:
    """Deterministic update and weight, known to the test on the server side."""
    vector = 0.5 * np.sin(np.arange(D) * (node_id % 97 + 1) + server_round)
    return vector.astype(np.float32), node_id % 5 + 1


def failure_mod(msg, ctxt, call_next):
    setup = setup_of(msg)
    if setup is not None:
        ctxt.state.config_records["test"] = ConfigRecord({"id": setup.client_id, "calls": 0,
                                                          "round": setup.round,
                                                          "protocol": setup.protocol})
    state = ctxt.state.config_records["test"]
    state["calls"] += 1
    protocol, server_round, client, calls = (state["protocol"], state["round"], state["id"],
                                             state["calls"])
    if (client in faulty(FAIL_AT_TRAIN, protocol, server_round) and calls == 1) or (
            client in faulty(FAIL_MID_ROUND, protocol, server_round) and calls == 2):
        raise RuntimeError(f"injected failure {(protocol, server_round, client)}")
    if SLOW.get((protocol, server_round, client)) == calls:
        release, began = released(protocol, server_round, client), time.monotonic()
        while not release.exists() and time.monotonic() - began < MAX_BLOCK_S:
            time.sleep(0.05)
    return call_next(msg, ctxt)


client_app = ClientApp(mods=[failure_mod, fedsecure_mod])


@client_app.train()
def train(msg: Message, ctxt: Context) -> Message:
    if LEGACY_FITINS in msg.content.array_records:  # DefaultWorkflow's FitIns: a NumPyClient's FitRes
        vector, weight = update_of(ctxt.node_id, int(msg.metadata.group_id))
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([vector.reshape(4, 10)]), weight, {})
        return Message(fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)
    vector, weight = update_of(ctxt.node_id, int(msg.content["config"]["server-round"]))
    return Message(RecordDict({"arrays": ArrayRecord({"w": Array(vector.reshape(4, 10))}),
                               "metrics": MetricRecord({"num-examples": weight})}), reply_to=msg)
