"""Flower's own SecAgg+ and fedsecure's, measured the same way inside one Flower simulation.

Both run on the same ClientApp (a legacy ``NumPyClient`` under ``DefaultWorkflow``, the shape
Flower's ``SecAggPlusWorkflow`` / ``secaggplus_mod`` serve); a routing mod hands each TRAIN
message to ``secaggplus_mod`` or to ``fedsecure_mod`` by the record it carries.  The server
side is ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`` against
``DefaultWorkflow()`` over :class:`~fedsecure.runtime.flower.FedSecureGrid`, both on the same
:class:`CountingGrid`.  Each workflow runs one warm-up round (Ray workers import and compile)
and then the measured round.

The case: n nodes, one vector of d float32 values each (L2 norm 0.9, weight 1, from
``(seed, node id)``); ``round(dropout * n)`` nodes (chosen by partition id from ``seed``) fail
when asked for their masked input, after the keys and shares went round: the costliest moment
(the server recovers their pairwise masks).  Both sides use the same graph: Flower's ``num_shares`` is
fedsecure SecAgg+'s degree + 1 and its threshold fedsecure's; both clip at 1.0 and have
max_weight 1 (``FEDSECURE`` lists fedsecure's precisions).  Measured in the measured round:

* ``client_cpu_s`` -- CPU seconds (``thread_time``) a surviving node spends in its ClientApp
  calls (mods and training), mean over survivors (``client_process_cpu_s``: the same with the
  worker process's other threads); ``server_cpu_s`` -- CPU seconds of the ServerApp's thread
  over the round (the workflow and Flower's grid);
* ``bytes_up`` / ``bytes_down`` -- serialized size (protobuf ``RecordDict``, what Flower puts
  on the wire) of the messages a surviving node sends / receives, mean over survivors;
* ``rounds`` -- the most replies a surviving node sends (its round trips with the server);
* ``error`` -- max |aggregate * survivors - exact sum of the survivors' updates| (the
  strategy's FedAvg mean turned back into the sum); ``error_rms`` -- the RMS of the same;
* ``peak_rss_mb`` -- the largest peak RSS of a process of the run (the ServerApp's, reset
  before the warm-up, or a Ray worker's); ``client_peak_rss_mb`` / ``server_peak_rss_mb``
  apart.

``measure_flower_secaggplus`` (imported by ``benchmarks/comparison.py``) runs Flower's workflow
alone; ``measure_in_flower`` runs any of ``WORKFLOWS`` in one simulation.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from flwr.app import Context
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.common.serde import recorddict_to_proto
from flwr.server import ServerConfig
from flwr.server.compat import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from fedsecure.messages import CODEC, MaskingSet
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.runtime.flower import RECORD, FedSecureGrid, GridWrapper, fedsecure_mod

FEDSECURE = {"fedsecure-secaggplus": {}, "fedsecure-secaggplus-21bit": {"scale_bits": 21}}
"""fedsecure's workflows: its defaults (16 fractional bits), and Flower's resolution (its 2**22
levels over [-clip, clip] are clip * 2**-21 apart)."""
WORKFLOWS = ("flower-secaggplus", *FEDSECURE)
ENV = "FEDSECURE_FLOWER_BENCH"  # JSON case for the Ray workers (they inherit the environment)
INPUT_NORM, CLIP, TIMEOUT_S = 0.9, 1.0, 600.0
ROOT = str(Path(__file__).resolve().parents[1])  # Ray's workers import benchmarks.flower_peer


def update_of(seed: int, node_id: int, d: int) -> np.ndarray:
    vector = np.random.default_rng([seed, node_id]).normal(size=d)
    return (vector * INPUT_NORM / np.linalg.norm(vector)).astype(np.float32)


def dropped_partitions(n: int, dropout: float, seed: int) -> list[int]:
    picker = np.random.default_rng(seed + 1)
    return sorted(int(p) for p in picker.choice(n, size=int(round(dropout * n)), replace=False))


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --------------------------------------------------------------------------- client side


class UpdateClient(NumPyClient):
    """Returns its fixed update, weight 1, whatever the model (the work is the aggregation's)."""

    def __init__(self, update: np.ndarray):
        self.update = update

    def fit(self, parameters, config):
        return [self.update], 1, {}


def client_fn(context: Context):
    case = json.loads(os.environ[ENV])
    return UpdateClient(update_of(case["seed"], context.node_id, case["d"])).to_client()


def route_mod(msg, ctxt, call_next):
    """Flower's SecAgg+ for its messages, fedsecure for the others (it passes on what is not its)."""
    mod = secaggplus_mod if RECORD_KEY_CONFIGS in msg.content.config_records else fedsecure_mod
    return mod(msg, ctxt, call_next)


def asks_for_masked_input(msg) -> bool:
    """Flower's COLLECT_MASKED_VECTORS stage, or fedsecure's MaskingSet (after the share receipts)."""
    records = msg.content.config_records
    if RECORD_KEY_CONFIGS in records:
        return records[RECORD_KEY_CONFIGS].get(Key.STAGE) == Stage.COLLECT_MASKED_VECTORS
    envelopes = records[RECORD].get("envelopes", []) if RECORD in records else []
    return any(isinstance(CODEC.decode(data).body, MaskingSet) for data in envelopes)


def measure_mod(msg, ctxt, call_next):
    """Times the call and appends one JSON line per call; a dropped node fails the call that
    asks for its masked input (both protocols: after the keys and shares went round)."""
    if msg.metadata.message_type != "train":
        return call_next(msg, ctxt)
    case = json.loads(os.environ[ENV])
    stage = msg.content.config_records.get(RECORD_KEY_CONFIGS, {}).get(Key.STAGE, "fedsecure")
    dropped = asks_for_masked_input(msg) and int(ctxt.node_config["partition-id"]) in case["dropped"]
    began, cpu, process_cpu = time.time(), time.thread_time(), time.process_time()
    try:
        if dropped:
            raise RuntimeError("injected dropout before the masked input")
        return call_next(msg, ctxt)
    finally:
        line = {"node": ctxt.node_id, "t": began, "cpu": time.thread_time() - cpu,
                "process_cpu": time.process_time() - process_cpu, "wall": time.time() - began,
                "stage": stage, "dropped": dropped, "rss_mb": _peak_rss_mb()}
        with open(Path(case["out"]) / f"client-{os.getpid()}.jsonl", "a") as out:
            out.write(json.dumps(line) + "\n")


client_app = ClientApp(client_fn=client_fn, mods=[measure_mod, route_mod])


# --------------------------------------------------------------------------- server side


class CountingGrid(GridWrapper):
    """Adds up the serialized size of what each node receives and sends (non-error replies)."""

    def __init__(self, grid):
        super().__init__(grid)
        self.down: dict[int, int] = {}
        self.up: dict[int, int] = {}
        self.replies: dict[int, int] = {}

    def reset(self) -> None:
        self.down, self.up, self.replies = {}, {}, {}

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        for m in messages:
            node = m.metadata.dst_node_id
            self.down[node] = self.down.get(node, 0) + recorddict_to_proto(m.content).ByteSize()
        replies = list(self.inner.send_and_receive(messages, timeout=timeout))
        for r in replies:
            if not r.has_error():
                node = r.metadata.src_node_id
                self.up[node] = self.up.get(node, 0) + recorddict_to_proto(r.content).ByteSize()
                self.replies[node] = self.replies.get(node, 0) + 1
        return replies


def _graph(n: int, d: int) -> tuple[int, int]:
    """fedsecure SecAgg+'s degree and threshold for n clients (Flower is given the same)."""
    aggregator = make_aggregator("secaggplus", AggregationSpec(n_clients=n, vector_length=d))
    return aggregator.graph.degree, aggregator.threshold


def _one_round(workflow: str, grid: CountingGrid, context: Context, n: int, d: int):
    """Run one round of ``workflow``; return the aggregate mean."""
    degree, threshold = _graph(n, d)
    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n,
                      min_available_clients=n,
                      initial_parameters=ndarrays_to_parameters([np.zeros(d, np.float32)]))
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=1), strategy=strategy)
    if workflow == "flower-secaggplus":
        fit = SecAggPlusWorkflow(num_shares=degree + 1, reconstruction_threshold=threshold,
                                 clipping_range=CLIP, max_weight=1.0, timeout=TIMEOUT_S)
        DefaultWorkflow(fit_workflow=fit)(grid, legacy)
    elif workflow in FEDSECURE:
        secure = FedSecureGrid(grid, "secaggplus", clip=CLIP, max_weight=1, timeout_s=TIMEOUT_S,
                               options=FEDSECURE[workflow])
        DefaultWorkflow()(secure, legacy)
        _, result, _ = secure.results[-1]
        if isinstance(result, Exception):
            raise result
    else:
        raise ValueError(f"unknown workflow {workflow!r}; known: {WORKFLOWS}")
    return legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()[0]


def measure_in_flower(n: int, d: int, dropout: float, seed: int,
                      workflows=WORKFLOWS, *, cpus_per_node: float = 1.0) -> dict[str, dict]:
    """{workflow: measurements (module docstring)} of one Flower simulation running each."""
    out = Path(tempfile.mkdtemp(prefix="fedsecure-flower-bench-"))
    dropped = set(dropped_partitions(n, dropout, seed))
    server_runs: dict[str, dict] = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        counting = CountingGrid(grid)
        for workflow in workflows:
            _one_round(workflow, counting, context, n, d)  # warm-up
            counting.reset()
            began, cpu = time.time(), time.thread_time()
            mean = _one_round(workflow, counting, context, n, d)
            server_runs[workflow] = {"began": began, "ended": time.time(),
                                     "server_cpu_s": time.thread_time() - cpu, "mean": mean,
                                     "down": dict(counting.down), "up": dict(counting.up),
                                     "replies": dict(counting.replies)}

    case = {"d": d, "seed": seed, "dropped": sorted(dropped), "out": str(out)}
    previous = {key: os.environ.get(key) for key in (ENV, "PYTHONPATH")}
    os.environ[ENV] = json.dumps(case)  # Ray's workers inherit the environment
    os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, previous["PYTHONPATH"] or ""])
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset this process's peak RSS (VmHWM)
    except OSError:
        pass
    try:
        run_simulation(server_app, client_app, num_supernodes=n,
                       backend_config={"client_resources": {"num_cpus": cpus_per_node,
                                                            "num_gpus": 0.0},
                                       "init_args": {"num_cpus": os.cpu_count() or 2,
                                                     "include_dashboard": False}})
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    server_rss = _peak_rss_mb()
    calls = [json.loads(line) for path in out.glob("client-*.jsonl")
             for line in path.read_text().splitlines()]
    missing = [w for w in workflows if w not in server_runs]
    if missing:
        raise RuntimeError(f"the ServerApp did not finish {missing} (see Flower's log)")
    return {w: _summary(server_runs[w], calls, seed, d, server_rss) for w in workflows}


def _summary(run: dict, calls: list[dict], seed: int, d: int, server_rss: float) -> dict:
    mine = [c for c in calls if run["began"] <= c["t"] <= run["ended"]]
    dropped = {c["node"] for c in mine if c["dropped"]}
    nodes = {c["node"] for c in mine}
    survivors = sorted(nodes - dropped)
    cpu = {node: sum(c["cpu"] for c in mine if c["node"] == node) for node in survivors}
    process_cpu = {node: sum(c["process_cpu"] for c in mine if c["node"] == node)
                   for node in survivors}
    exact = np.sum([update_of(seed, node, d).astype(np.float64) for node in survivors], axis=0)
    diff = run["mean"].astype(np.float64) * len(survivors) - exact
    client_rss = max(c["rss_mb"] for c in calls)
    return {
        "client_cpu_s": statistics.mean(cpu.values()),
        "client_process_cpu_s": statistics.mean(process_cpu.values()),
        "server_cpu_s": run["server_cpu_s"],
        "bytes_up": statistics.mean(run["up"].get(node, 0) for node in survivors),
        "bytes_down": statistics.mean(run["down"].get(node, 0) for node in survivors),
        "rounds": max(run["replies"].get(node, 0) for node in survivors),
        "error": float(np.max(np.abs(diff))),
        "error_rms": float(np.sqrt(np.mean(diff**2))),
        "peak_rss_mb": max(client_rss, server_rss),
        "client_peak_rss_mb": client_rss,
        "server_peak_rss_mb": server_rss,
        "survivors": len(survivors),
        "wall_s": run["ended"] - run["began"],
    }


def measure_flower_secaggplus(n: int, d: int, dropout: float, seed: int) -> dict:
    """Flower's ``SecAggPlusWorkflow`` alone on the case of the module docstring."""
    return measure_in_flower(n, d, dropout, seed, workflows=("flower-secaggplus",))[
        "flower-secaggplus"]
