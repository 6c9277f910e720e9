"""The ClientApp of the Flower tests, in an importable module: Ray workers import it by name
(run the tests with the repository root on PYTHONPATH)."""

from __future__ import annotations

import time

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedsecure.runtime.flower import fedsecure_mod, setup_of

NODES, ROUNDS, D = 10, 3, 40
FAIL_AT_TRAIN = {(2, 3)}  # (round, client id): raises when asked to train
SLOW_MID_ROUND = {("secagg", 2, 4)}  # (protocol, round, client id): misses a deadline
SLOW_S = 40.0  # how long that node sleeps on its third fedsecure message (deadline: 15 s)
FAIL_MID_ROUND = {(3, 5)}  # raises on its second fedsecure message (keys advertised)


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
    key = (state["round"], state["id"])
    if (key in FAIL_AT_TRAIN and state["calls"] == 1) or (key in FAIL_MID_ROUND
                                                          and state["calls"] == 2):
        raise RuntimeError(f"injected failure {key}")
    if (state["protocol"], *key) in SLOW_MID_ROUND and state["calls"] == 3:
        time.sleep(SLOW_S)
    return call_next(msg, ctxt)


client_app = ClientApp(mods=[failure_mod, fedsecure_mod])


@client_app.train()
def train(msg: Message, ctxt: Context) -> Message:
    vector, weight = update_of(ctxt.node_id, int(msg.content["config"]["server-round"]))
    return Message(RecordDict({"arrays": ArrayRecord({"w": Array(vector.reshape(4, 10))}),
                               "metrics": MetricRecord({"num-examples": weight})}), reply_to=msg)
