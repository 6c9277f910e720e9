"""DP vs SMPC vs HE on the same (n clients, d values, dropout rate): what one case measures.

The grids (``quick``, ``full``) and the techniques compared live here; ``bench_compare.py``
turns them into pytest-benchmark cases and ``report.py`` renders the run.  Every technique is
built through the library -- :func:`~fedsecure.protocols.base.make_aggregator` or
:func:`~fedsecure.dp.make_dp_aggregator` -- and played by the in-process simulator
(:func:`~fedsecure.runtime.simulation.simulate_round`); nothing here knows how a protocol works.

One round case: every client holds a vector of L2 norm 0.9 (inside the DP clip, so clipping
changes nothing and the error is the technique's own: quantization, CKKS noise, DP noise) and
weight 1 (DP-FedAvg's unweighted sum, the same for every technique); ``dropout`` of the clients
(never client 1, CKKS's key holder) go silent just before their upload, the costliest moment
for the masking protocols' recovery.  Measured, from the simulator's per-party statistics:

* ``client_cpu_s`` / ``server_cpu_s`` -- CPU seconds of a surviving client (mean) and of the
  server, protocol work only; a client's ``set_input`` (where the DP wrappers clip and noise)
  is timed here and added, as the simulator does not count it.  :func:`measure_case` collects
  garbage before each round and turns the collector off during it, so that a collection of
  every party's garbage is not charged to whichever party happened to trigger it, and no
  round runs on a heap that an earlier round or technique left;
* ``bytes_up`` / ``bytes_down`` -- bytes a surviving client sends / receives (mean);
* ``rounds`` -- the most messages a surviving client sends (its round trips with the server);
* ``peak_rss_mb`` -- the process's peak resident memory during the round (the simulator runs
  every party in this one process), and ``round_mb`` its growth over the memory before;
* ``error`` -- RMS over coordinates of (result - exact plaintext sum of the survivors), and
  ``relative_error`` its L2 norm over the exact sum's.

The training comparison runs ``fedsecure.fl.loop.train`` (the code path of ``fedsecure train``)
on the embedded digits dataset for each technique and, with DP, each epsilon; time to the
target accuracy is CPU seconds (``time.process_time``) of the whole simulated federation, which
a loaded machine stretches far less than wall time.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import statistics
import time
import weakref
from dataclasses import dataclass

import numpy as np

from fedsecure.dp import make_dp_aggregator
from fedsecure.errors import ConfigurationError
from fedsecure.messages import SERVER_ID
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.protocols.identity import enroll_simulated
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round

CLIP_NORM = 1.0  # DP: L2 clip of each update
NOISE_MULTIPLIER = 1.0  # DP: the noise of one round, sigma = z * C
INPUT_NORM = 0.9
UPLOAD = {"plaintext": "PlainUpdate", "secagg": "MaskedInput", "secaggplus": "MaskedInput",
          "ckks": "CkksUpdate"}
"""The message each protocol's client uploads its (masked, encrypted) vector in."""


class Unavailable(Exception):
    """A technique that cannot run here (a missing package or feature); the text says why."""


@dataclass(frozen=True)
class Technique:
    name: str
    family: str  # "baseline", "DP", "SMPC", "HE", "peer"
    protocol: str  # the protocol that carries the vectors
    placement: str | None = None  # DP placement
    security: str = "semi-honest"
    label: str = ""


TECHNIQUES = (
    Technique("plaintext", "baseline", "plaintext", label="plaintext (no protection)"),
    Technique("dp-local", "DP", "plaintext", placement="local", label="local DP"),
    Technique("dp-central", "DP", "plaintext", placement="central", label="central DP"),
    Technique("dp-distributed", "DP", "secagg", placement="distributed",
              label="distributed DP (in SecAgg)"),
    Technique("secagg", "SMPC", "secagg", label="SecAgg"),
    Technique("secagg-malicious", "SMPC", "secagg", security="malicious",
              label="SecAgg, malicious server"),
    Technique("secaggplus", "SMPC", "secaggplus", label="SecAgg+"),
    Technique("secaggplus-malicious", "SMPC", "secaggplus", security="malicious",
              label="SecAgg+, malicious server"),
    Technique("ckks", "HE", "ckks", label="CKKS"),
    Technique("flower-secaggplus", "peer", "flower", label="Flower SecAgg+ (peer)"),
)
BY_NAME = {t.name: t for t in TECHNIQUES}


@dataclass(frozen=True)
class Grid:
    """The round cases (n-sweep at ``d_fixed``, d-sweep at ``n_fixed``, each at every dropout)
    and the training runs."""

    name: str
    ns: tuple[int, ...]
    ds: tuple[int, ...]
    n_fixed: int
    d_fixed: int
    dropouts: tuple[float, ...]
    train_clients: int
    train_rounds: int
    epsilons: tuple[float, ...]
    seeds: tuple[int, ...]
    target_accuracy: float
    train_protocols: tuple[str, ...] = ("plaintext", "secagg", "secaggplus", "ckks")
    dp_placements: tuple[str, ...] = ("central", "distributed", "local")
    # the peer's (n, d) points: each one is a whole Flower simulation (a Ray start-up of tens of
    # seconds), so the quick grid takes the ends of both sweeps; None: every round case
    peer_points: tuple[tuple[int, int], ...] | None = None

    def round_cases(self) -> list[tuple[int, int, float]]:
        cases = {(n, self.d_fixed, p) for n in self.ns for p in self.dropouts}
        cases |= {(self.n_fixed, d, p) for d in self.ds for p in self.dropouts}
        return sorted(cases)

    def runs(self, technique: Technique, n: int, d: int) -> bool:
        """Whether ``technique`` is measured at (n, d) in this grid."""
        return technique.family != "peer" or self.peer_points is None or (n, d) in self.peer_points


GRIDS = {
    "quick": Grid("quick", ns=(20, 40, 80, 160), ds=(10**3, 4 * 10**3, 16 * 10**3, 64 * 10**3),
                  n_fixed=40, d_fixed=10**3, dropouts=(0.1,), train_clients=50, train_rounds=10,
                  epsilons=(1.0, 4.0, 16.0), seeds=(0,), target_accuracy=0.85,
                  peer_points=((20, 10**3), (160, 10**3), (40, 64 * 10**3))),
    "full": Grid("full", ns=(20, 50, 100, 200, 400), ds=(10**3, 10**4, 10**5, 10**6),
                 n_fixed=50, d_fixed=10**4, dropouts=(0.0, 0.1, 0.3), train_clients=100,
                 train_rounds=15, epsilons=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0), seeds=(0, 1, 2),
                 target_accuracy=0.85),
}


# --------------------------------------------------------------------------- round cases


def _identities(n: int) -> dict:
    """Registered identity keys for the malicious modes (a closed registration, whose nonce
    SecAgg+ derives its graph from), the same for every run."""
    registry, private = enroll_simulated(range(1, n + 1), DeterministicRandom("identities"))
    return {"identities": registry, "identity_keys": private}


def check_available(technique: Technique) -> None:
    """:class:`Unavailable`, saying why, when this installation cannot run ``technique``."""
    if technique.family == "peer":
        if importlib.util.find_spec("flwr") is None:
            raise Unavailable("flwr is not installed (pip install 'fedsecure[flower]')")
        try:
            importlib.import_module(PEER_MODULE)
        except ModuleNotFoundError as exc:
            raise Unavailable(f"{PEER_MODULE} cannot be imported ({exc})") from None
    if technique.protocol == "ckks" and importlib.util.find_spec("tenseal") is None:
        raise Unavailable("TenSEAL is not installed (pip install 'fedsecure[he]')")
    if technique.security == "malicious":
        try:  # a protocol without the mode refuses the option itself, before any key check
            make_aggregator(technique.protocol, AggregationSpec(n_clients=3, vector_length=1),
                            security="malicious")
        except ConfigurationError as exc:
            if str(exc).startswith("security="):
                raise Unavailable(f"{technique.protocol}: {exc}"
                                  ) from None


def build_aggregator(technique: Technique, spec: AggregationSpec, dropout: float):
    """The library's aggregator for ``technique`` over ``spec``."""
    check_available(technique)
    options: dict = {}
    if technique.protocol == "secaggplus":
        options["dropout_fraction"] = max(dropout, 0.1)
    if technique.security == "malicious":
        options.update(security="malicious", **_identities(spec.n_clients))
    if technique.placement is not None:
        return make_dp_aggregator(technique.placement, spec, protocol=technique.protocol,
                                  protocol_options=options, clip_norm=CLIP_NORM,
                                  noise_multiplier=NOISE_MULTIPLIER)
    return make_aggregator(technique.protocol, spec, **options)


class _TimedInputs:
    """Delegates to an aggregator and times each client's ``set_input`` (CPU seconds).  The
    timed method holds its party weakly: a party that referred to itself through it would be
    garbage only the cycle collector frees (with it, e.g. the vector a DP client encoded), and
    :func:`measure_case` runs with the collector off."""

    def __init__(self, inner):
        self.inner, self.input_cpu_s = inner, {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def client(self, client_id: int, **options):
        party = self.inner.client(client_id, **options)
        set_input = weakref.WeakMethod(party.set_input)

        def timed(vector, weight=1):
            began = time.process_time()
            set_input()(vector, weight)
            self.input_cpu_s[client_id] = time.process_time() - began

        party.set_input = timed
        return party


def round_inputs(n: int, d: int, seed: int) -> dict[int, tuple[np.ndarray, int]]:
    data = np.random.default_rng(seed)
    vectors = data.normal(size=(n, d))
    vectors *= INPUT_NORM / np.linalg.norm(vectors, axis=1, keepdims=True)
    return {c: (vectors[c - 1], 1) for c in range(1, n + 1)}


def dropped_clients(n: int, dropout: float, seed: int) -> list[int]:
    picker = np.random.default_rng(seed + 1)
    return sorted(int(c) for c in picker.choice(np.arange(2, n + 1), size=int(round(dropout * n)),
                                                replace=False))


def _rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_round(technique: str, n: int, d: int, dropout: float, seed: int = 0) -> dict:
    """One simulated round of ``technique``; the measurements of the module docstring."""
    tech = BY_NAME[technique]
    if tech.family == "peer":
        return measure_peer(n, d, dropout, seed)
    spec = AggregationSpec(n_clients=n, vector_length=d)
    aggregator = _TimedInputs(build_aggregator(tech, spec, dropout))
    inputs = round_inputs(n, d, seed)
    faults = [Silent(c, UPLOAD[tech.protocol]) for c in dropped_clients(n, dropout, seed)]
    before = _rss_bytes()
    report = simulate_round(aggregator, inputs, faults=faults)
    if report.error is not None:
        raise report.error
    result = report.result
    survivors = [report.stats[c] for c in result.survivors]
    exact = np.sum([inputs[c][0] for c in result.survivors], axis=0)
    error = result.weighted_sum - exact
    return {
        "client_cpu_s": statistics.mean(s.total_cpu_seconds for s in survivors)
        + statistics.mean(aggregator.input_cpu_s[c] for c in result.survivors),
        "server_cpu_s": report.stats[SERVER_ID].total_cpu_seconds,
        "bytes_up": statistics.mean(s.total_bytes_sent for s in survivors),
        "bytes_down": statistics.mean(s.total_bytes_received for s in survivors),
        "rounds": max(len(s.bytes_sent) for s in survivors),
        "peak_rss_mb": report.peak_rss_bytes / 2**20,
        "round_mb": max(report.peak_rss_bytes - before, 0) / 2**20,
        "error": float(np.sqrt(np.mean(error**2))),
        "relative_error": float(np.linalg.norm(error) / np.linalg.norm(exact)),
        "survivors": len(result.survivors),
    }


def measure_case(technique: str, n: int, d: int, dropout: float, seed: int = 0, *,
                 budget_s: float = 0.5, most: int = 5) -> dict:
    """:func:`measure_round` repeated: at least three times when a round takes under a wall
    second, twice under three, then while all the rounds took under ``budget_s`` (at most
    ``most``).  CPU seconds are the *minimum* over the repeats -- CPU time is easily stretched
    (first-touch page faults of a new vector size, another job on the core), never shortened --
    the other measurements their median; ``wall_s`` is the median wall seconds of a round and
    ``repeats`` their number."""
    runs, walls = [], []
    while (not runs or len(runs) < (3 if walls[0] < 1 else 2 if walls[0] < 3 else 1)
           or (sum(walls) < budget_s and len(runs) < most)):
        gc.collect()  # every round starts clean: no earlier garbage lands on a party's clock
        gc.disable()
        try:
            began = time.perf_counter()
            runs.append(measure_round(technique, n, d, dropout, seed))
            walls.append(time.perf_counter() - began)
        finally:
            gc.enable()
    pick = {k: min if k.endswith("cpu_s") else statistics.median for k in runs[0]}
    out = {k: pick[k](r[k] for r in runs) if isinstance(v, float) else v
           for k, v in runs[0].items()}
    return dict(out, wall_s=statistics.median(walls), repeats=len(runs))


PEER_MODULE = "benchmarks.flower_peer"
PEER_KEYS = ("client_cpu_s", "server_cpu_s", "bytes_up", "bytes_down", "rounds", "error",
             "peak_rss_mb")


def measure_peer(n: int, d: int, dropout: float, seed: int) -> dict:
    """Flower's SecAgg+ (``SecAggPlusWorkflow``) on the same case, measured by
    ``benchmarks/flower_peer.py``; :class:`Unavailable` without flwr or that module."""
    check_available(BY_NAME["flower-secaggplus"])
    peer = importlib.import_module(PEER_MODULE)
    measured = peer.measure_flower_secaggplus(n=n, d=d, dropout=dropout, seed=seed)
    missing = [k for k in PEER_KEYS if k not in measured]
    if missing:
        raise KeyError(f"{PEER_MODULE}.measure_flower_secaggplus returned no {missing}")
    out = {k: measured[k] for k in PEER_KEYS}
    if "error_rms" in measured:  # the RMS error, as measured here; its "error" is the max
        out.update(error=measured["error_rms"], error_max=measured["error"])
    return out


# --------------------------------------------------------------------------- training


def _config(**options):
    from fedsecure.fl.config import TrainConfig

    return TrainConfig(partition="iid", model="logistic", local_epochs=2, lr=0.1, clip_norm=0.3,
                       **options)


def warm_up_training(run_dir: str) -> None:
    """One tiny run first, so that torch's first-use costs fall on no measured run."""
    from fedsecure.fl import loop

    loop.train(_config(clients=4, rounds=1, protocol="plaintext", run_dir=run_dir))


def train_run(grid: Grid, *, protocol: str, placement: str | None, epsilon: float | None,
              seed: int, run_dir: str) -> dict:
    """One training run on digits: accuracy, wall seconds and CPU seconds of every round
    (the whole federation: every party runs in this process), epsilon spent, and the rounds
    and CPU seconds it took to reach the grid's target accuracy."""
    from fedsecure.fl import loop

    config = _config(clients=grid.train_clients, rounds=grid.train_rounds, seed=seed,
                     protocol=protocol, dp=placement, epsilon=epsilon, run_dir=run_dir,
                     dp_survivors=1.0 if placement == "distributed" else None)
    cpu = [time.process_time()]
    metrics = loop.train(config, on_round=lambda row, cfg: cpu.append(time.process_time())).metrics
    accuracy = [r["accuracy"] for r in metrics]
    reached = [i for i, a in enumerate(accuracy) if a >= grid.target_accuracy]
    return {
        "accuracy": accuracy,
        "round_seconds": [r["seconds_train"] + r["seconds_aggregate"] + r["seconds_eval"]
                          for r in metrics],
        "round_cpu_s": [float(x) for x in np.diff(cpu)],
        "final_accuracy": accuracy[-1],
        "epsilon_spent": metrics[-1]["epsilon"],
        "target_accuracy": grid.target_accuracy,
        "rounds_to_target": reached[0] + 1 if reached else None,
        "cpu_s_to_target": cpu[reached[0] + 1] - cpu[0] if reached else None,
        "bytes_per_round": statistics.mean(r["bytes"] for r in metrics),
    }
