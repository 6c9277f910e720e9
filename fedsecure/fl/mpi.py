"""Federated training with every party an MPI rank: ``mpirun -n N python -m fedsecure train --mpi``.

Rank 0 is the server: it holds the global model and the test set, evaluates, writes the run
directory and reports progress.  Rank r (1..N-1) is client r and trains only its own shard,
client index r - 1 of the partition every rank computes alike from the configuration's seed
(so ``clients`` must be N - 1).  Nothing about training or aggregation is written twice: the
data, model, local training with its per-round seeds, clipping, evaluation and run directory
are :mod:`fedsecure.fl.loop`'s and :mod:`fedsecure.fl.server`'s, and every round's
aggregation is one :func:`~fedsecure.runtime.mpi_runner.run_mpi_round` of the configured
protocol over all ranks.

**Start-up**, while every rank is certainly alive: each rank runs the training pre-flight on
its own (rank 0 also claims the run directory), then the ranks compare, collectively, whether
anyone failed and a digest of the configuration and the loaded data
(:func:`~fedsecure.runtime.mpi_runner.agree_on_configuration`).  A bad option, a wrong number
of ranks or a host with different data stops every rank with the same one-line
:class:`~fedsecure.errors.ConfigurationError` before any training.

**A round r**, with the training messages on an MPI tag of their own (msgspec, the model as
raw little-endian float64; nothing is pickled):

1. rank 0 sends :class:`GlobalModel` (r and the global model's vector) to every client rank;
2. each client loads it, trains its shard (:func:`fedsecure.fl.loop.local_update`, the seeds of
   the in-process loop), clips the delta (:func:`fedsecure.fl.server.clip_update`) and sends
   :class:`LocalReport` -- sample count, training loss, clipped coordinates: what the
   in-process loop records -- to rank 0;
3. every rank runs one aggregation round, a client's input being its clipped delta weighted
   by its sample count (the compiled kernels are warmed up in the first round only);
4. rank 0 adds the mean delta of the survivors to the global model, evaluates it and writes
   the checkpoint and metrics (:func:`fedsecure.fl.loop.finish_round` and
   :func:`~fedsecure.fl.loop.run_rounds`, exactly as in one process) and appends the round's
   per-rank table to ``mpi_rounds.log`` in the run directory.

After the last round rank 0 writes the final model and plot and sends :class:`TrainingOver`;
then every rank finalizes MPI.  On the CPU a client's delta is bit for bit the in-process
loop's for the same global model, so an MPI run follows the in-process run up to the
aggregation protocol's own rounding (none for ``plaintext``, the quantization error for the
masking protocols).  A rank that stops reporting ends the run after the round in which it
went missing: rank 0 says so, tells the others, and ends the job with ``MPI_Abort`` (status
75; it also ends a rank that hangs).  The checkpoint holds every finished round, and
``fedsecure train --resume`` continues the run in one process.  mpi4py is imported only when
a job runs, so this module loads without the ``mpi`` extra.

**Under DP** (``config.dp``, :mod:`fedsecure.fl.dp_round`) the rounds are that module's, with
each party's part on its own rank.  Every rank makes the run's
:class:`~fedsecure.fl.dp_round.DPPlan` in its pre-flight (it calibrates the noise multiplier
from the configuration itself, so a client's noise does not depend on rank 0's word, and a
failure stops every rank alike); rank 0 holds the accountant
(:class:`~fedsecure.fl.dp_round.DPRounds`: budget check before the round, the event reached
with the real survivors after it, epsilon in the row, the adaptive clip).  ``GlobalModel``
carries the round's L2 clip (rank 0's adaptive clip; the noise scales with it, so it cannot
weaken a client's guarantee); every rank runs the round's DP aggregator
(``MPIRoundConfig.dp``, weight 1 each), so a client rank clips, counts and noises its own
update (local, distributed) before it leaves the rank, and rank 0 decodes the sum and, under
central DP, noises it; the round configuration's agreement checks that all ranks run the same
noise.  A client's ``LocalReport`` then carries no statistics (they would be un-noised
releases of its data): ``train_loss`` and ``clipped_fraction`` are null in the rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from fedsecure.config import require
from fedsecure.errors import (
    BackendUnavailable,
    ConfigurationError,
    LocalProtocolError,
    MalformedMessage,
    ProtocolAborted,
)
from fedsecure.fl import loop, rundir
from fedsecure.fl.config import TrainConfig
from fedsecure.fl.model import model_to_vector, vector_size, vector_to_model
from fedsecure.fl.server import RoundAggregate, clip_update
from fedsecure.messages import SERVER_ID
from fedsecure.protocols.base import AggregateResult
from fedsecure.runtime.mpi_config import MPIRoundConfig
from fedsecure.runtime.mpi_runner import (
    DIGEST_BYTES,
    RankOutcome,
    agree_on_configuration,
    run_mpi_round,
)

if TYPE_CHECKING:  # fedsecure.fl.dp_round needs the dp extra: imported where DP runs
    from fedsecure.fl.dp_round import DPPlan, DPRound

TRAINING_TAG = 3
"""MPI tag of the training messages (the aggregation runner uses tags 1 and 2 on its own
duplicate of the communicator)."""

WAIT_TIMEOUT_S = MPIRoundConfig().round_timeout_s
"""The longest a rank waits for a start-up peer, a training message or a client's report."""

LOCAL_SETTINGS = ("run_dir", "device", "threads")
"""Options that may differ between ranks (where a rank runs, not what it computes)."""


class GlobalModel(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Rank 0 -> client rank: round ``round`` begins from this global model."""

    round: int
    weights: bytes  # the model vector, float64 little-endian
    clip_norm: float | None = None  # under DP: the round's L2 clip (rank 0's adaptive clip)


class LocalReport(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Client rank -> rank 0: what the metrics record of a client's local training; under DP
    only that it trained (the statistics would be un-noised releases of its data: None)."""

    round: int
    n_samples: int | None
    train_loss: float | None
    clipped: int | None  # coordinates of the delta that were clipped


class TrainingOver(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Rank 0 -> client rank: no more rounds; finalize MPI if ``clean`` (every rank is
    alive), else leave without finalizing."""

    rounds: int
    clean: bool


TrainingMessage = GlobalModel | LocalReport | TrainingOver
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(TrainingMessage)


def train_mpi(config: TrainConfig, *, comm=None, on_start=None, on_round=None,
              on_progress=None) -> tuple[RankOutcome, loop.TrainResult | None]:
    """Run this rank's part of a training job; call it on every rank of ``comm`` (default
    ``MPI.COMM_WORLD``).

    Rank 0 calls ``on_progress(text)`` at the steps of the start-up (data loaded, waiting for
    the other ranks, first round), ``on_start(config)`` once every rank has agreed on the
    configuration and ``on_round(row, config)`` after each round, and gets the
    :class:`~fedsecure.fl.loop.TrainResult`; the other ranks get None.  The outcome says how
    to end the rank (:func:`~fedsecure.runtime.mpi_runner.shutdown`).
    """
    from mpi4py import MPI

    comm = comm if comm is not None else MPI.COMM_WORLD
    rank, world = comm.Get_rank(), comm.Get_size()
    say = on_progress if rank == SERVER_ID and on_progress is not None else (lambda _: None)
    fed, plan, error = None, None, None
    try:
        fed, plan = _preflight(config, rank, world)
    except (ConfigurationError, BackendUnavailable) as exc:
        error = str(exc)
    if fed is not None:
        say(f"rank 0: {len(fed.dataset.y_train)} training samples and the model are ready;"
            f" waiting for the {world - 1} client ranks")
    agree_on_configuration(comm, bytes(DIGEST_BYTES) if fed is None else _digest(fed, world),
                           what="training configuration or data", timeout_s=WAIT_TIMEOUT_S,
                           error=error)
    channel = _Channel(comm)
    try:
        if rank == SERVER_ID:
            if on_start is not None:
                on_start(fed.config)
            say("training: the first round also warms up every rank's kernels")
            return _serve(fed, plan, comm, channel, on_round)
        return _train_shard(fed, plan, comm, channel, rank), None
    finally:
        channel.close()


def _preflight(config: TrainConfig, rank: int, world: int
               ) -> tuple[loop.Federation, DPPlan | None]:
    """This rank's Federation and, under DP, the run's DP plan (every rank calibrates the
    noise itself, from the configuration; the round configurations' agreement then checks
    that all got the same)."""
    require(config.clients == world - 1, "clients", config.clients,
            f"--mpi runs one client per client rank; this job has {world} ranks (rank 0 is the"
            f" server), so it trains {world - 1} clients: set clients = {world - 1}, or start"
            f" it with mpirun -n {config.clients + 1}")
    require(config.fraction == 1.0, "fraction", config.fraction,
            "under --mpi every client rank trains in every round; use fraction=1.0")
    require(config.stragglers == 0, "stragglers", config.stragglers,
            "simulated stragglers are not available under --mpi (a rank that misses"
            " deadline_s is cut off for real)")
    require(not config.personalize, "personalize", config.personalize,
            "is not available under --mpi yet")
    require(config.robust is None and config.attack is None, "robust", config.robust,
            "robust rules and simulated attacks are not available under --mpi yet; run"
            " without --mpi")
    if rank == SERVER_ID:
        config = loop.claim_run_dir(config)
    fed = loop.prepare(config)
    if config.dp is None:
        return fed, None
    from fedsecure.fl.dp_round import DPPlan  # extra: dp

    return fed, DPPlan(fed)


def _digest(fed: loop.Federation, world: int) -> bytes:
    """What every rank must share: the configuration (less where each rank runs) and data."""
    settings = {k: v for k, v in fed.config.to_dict().items() if k not in LOCAL_SETTINGS}
    digest = hashlib.sha256(b"fedsecure/train-mpi/v1")
    digest.update(json.dumps({"world_size": world, **settings}, sort_keys=True).encode())
    data = fed.dataset
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.digest()


def _round_config(fed: loop.Federation, round_index: int, *, warm_up: bool,
                  dp: DPRound | None = None) -> MPIRoundConfig:
    """The aggregation round every rank runs: the in-process loop's spec, as MPI ranks (under
    DP: inside the round's DP aggregator, every client with weight 1)."""
    cfg = fed.config
    options = {} if cfg.deadline_s is None else {"deadline_s": cfg.deadline_s}
    if dp is None:
        options["max_weight"] = max(len(p) for p in fed.parts)
    else:
        options.update(dp=dp.options, max_weight=1, min_clients=dp.min_clients)
    return MPIRoundConfig(protocol=cfg.protocol, protocol_options=cfg.protocol_options,
                          round=round_index, dim=vector_size(fed.model), seed=cfg.seed,
                          clip=cfg.clip, warm_up=warm_up, **options)


# --------------------------------------------------------------------------- rank 0


class _Server:
    """Rank 0's rounds, played by :func:`fedsecure.fl.loop.run_rounds`."""

    def __init__(self, comm, channel: _Channel):
        self.comm = comm
        self.channel = channel
        self.clients = range(1, comm.Get_size())
        self.played = 0
        self.missing: list[int] = []

    def play(self, fed: loop.Federation, round_index: int, dp: DPRound | None = None
             ) -> tuple[dict, AggregateResult | None]:
        """Round ``round_index`` (through ``dp``'s aggregator under DP, a
        :data:`~fedsecure.fl.dp_round.DPRoundFn`): its metrics row and released result."""
        if self.missing:
            raise ProtocolAborted(
                f"client ranks {self.missing} stopped reporting in round {round_index - 1};"
                f" training stops (the run directory holds the finished rounds)")
        began = time.perf_counter()
        weights = model_to_vector(fed.model).astype("<f8").tobytes()
        start = GlobalModel(round=round_index, weights=weights,
                            clip_norm=None if dp is None else dp.clip_norm)
        for rank in self.clients:
            self.channel.send(rank, start)
        reports = self._collect_reports(round_index, private=dp is not None)
        trained = time.perf_counter()
        with (Path(fed.config.run_dir) / rundir.MPI_LOG_FILE).open("a") as log:
            outcome = run_mpi_round(
                _round_config(fed, round_index, warm_up=not self.played, dp=dp),
                comm=self.comm, produce_update=_no_update_on_rank_0, stdout=log)
        aggregated = time.perf_counter()
        self.played += 1
        report = outcome.report
        self.missing = list(report["missing_reports"])
        result = outcome.result
        ranks = list(self.clients)
        private = dp is not None  # the clients sent no statistics of their data
        aggregate = RoundAggregate(
            mean=None if result is None else np.asarray(result.mean, dtype=np.float64),
            survivors=() if result is None else tuple(r - 1 for r in result.survivors),
            dropped=tuple(r - 1 for r in (ranks if result is None else result.dropped)),
            error=None if report["error"] is None else ProtocolAborted(report["error"]),
            clipped_fraction=None if private else sum(r.clipped for r in reports.values())
            / (len(ranks) * report["dim"]),
            phase_seconds=report["phase_seconds"],
            bytes_total=report["bytes_total"],
            quantization_error=report["quantization_error"],
        )
        row = loop.finish_round(
            fed, round_index, sampled=[r - 1 for r in ranks], stragglers=[], outcome=aggregate,
            losses=[] if private else [(reports[r].n_samples, reports[r].train_loss)
                                       for r in ranks],
            seconds_train=trained - began, seconds_aggregate=aggregated - trained)
        return row, result

    def _collect_reports(self, round_index: int, *, private: bool) -> dict[int, LocalReport]:
        """Every client's report of the round (``private``, under DP: without statistics)."""
        reports: dict[int, LocalReport] = {}
        while len(reports) < len(self.clients):
            source, message = self.channel.receive(WAIT_TIMEOUT_S, "a client's training report")
            if not isinstance(message, LocalReport) or message.round != round_index \
                    or source not in self.clients or source in reports \
                    or any((value is None) != private for value in
                           (message.n_samples, message.train_loss, message.clipped)):
                raise MalformedMessage(f"unexpected {message!r} in round {round_index}", source)
            reports[source] = message
        return reports


def _no_update_on_rank_0(rank: int):
    """``produce_update`` of rank 0, which the runner never calls: the server has no input."""
    raise LocalProtocolError(f"rank {rank} is the server and has no update")


def _serve(fed: loop.Federation, plan: DPPlan | None, comm, channel: _Channel, on_round
           ) -> tuple[RankOutcome, loop.TrainResult | None]:
    server = _Server(comm, channel)
    if plan is None:
        def play(fed, round_index):
            return server.play(fed, round_index)[0]
    else:  # the run's accountant lives here, on rank 0
        from fedsecure.fl.dp_round import DPRounds

        play = DPRounds(fed, [], server.play, plan=plan).play
    try:
        result = loop.run_rounds(fed, [], play=play, on_round=on_round)
    except ProtocolAborted as exc:  # a client rank went missing: stop, keep what is saved
        print(f"fedsecure train: rank 0: {exc}", file=sys.stderr, flush=True)
        result = None
    clean = result is not None and not server.missing
    for rank in server.clients:
        channel.send(rank, TrainingOver(rounds=server.played, clean=clean))
    return RankOutcome(SERVER_ID, 0 if result is not None else 1, clean=clean,
                       end_job=not clean), result


# --------------------------------------------------------------------------- client ranks


def _train_shard(fed: loop.Federation, plan: DPPlan | None, comm, channel: _Channel,
                 rank: int) -> RankOutcome:
    """Client rank ``rank``: train shard ``rank - 1`` in every round rank 0 starts."""
    d, played = vector_size(fed.model), 0
    while True:
        source, message = channel.receive(WAIT_TIMEOUT_S, "the next round from rank 0")
        if source != SERVER_ID or not isinstance(message, (GlobalModel, TrainingOver)):
            raise MalformedMessage(f"unexpected {type(message).__name__}", source)
        if isinstance(message, TrainingOver):
            return RankOutcome(rank, 0 if message.clean else 1, clean=message.clean)
        if message.round != played + 1 or len(message.weights) != 8 * d:
            raise MalformedMessage(
                f"GlobalModel for round {message.round} with {len(message.weights)} bytes;"
                f" expected round {played + 1} and {8 * d} bytes", source)
        clip = message.clip_norm
        if not (clip is None if plan is None
                else clip is not None and math.isfinite(clip) and clip > 0):
            raise MalformedMessage(f"GlobalModel with clip_norm={clip!r} in a run with"
                                   f" dp={fed.config.dp!r}", source)
        dp = None if plan is None else plan.round(clip)
        outcome = _client_round(fed, comm, channel, rank, message, warm_up=not played, dp=dp)
        played += 1
        if not outcome.clean:
            return outcome


def _client_round(fed: loop.Federation, comm, channel: _Channel, rank: int,
                  start: GlobalModel, *, warm_up: bool, dp: DPRound | None) -> RankOutcome:
    """Train from the global model of ``start``, report to rank 0, aggregate the delta (under
    DP: this rank's DP client clips and noises it before it leaves the rank)."""
    vector_to_model(np.frombuffer(start.weights, dtype="<f8").copy(), fed.model)
    update = loop.local_update(fed, start.round, rank - 1)
    delta, clipped = clip_update(update.delta, fed.config.clip)
    if dp is None:
        report, weight = LocalReport(start.round, update.n_samples, update.train_loss,
                                     clipped), update.n_samples
    else:
        report, weight = LocalReport(start.round, None, None, None), 1
    channel.send(SERVER_ID, report)
    return run_mpi_round(_round_config(fed, start.round, warm_up=warm_up, dp=dp), comm=comm,
                         produce_update=lambda _: (delta, weight))


# --------------------------------------------------------------------------- the channel


class _Channel:
    """Training messages between rank 0 and the client ranks, on :data:`TRAINING_TAG`."""

    def __init__(self, comm):
        from fedsecure.transport.mpi import MPITransport

        self.transport = MPITransport(comm, tag=TRAINING_TAG)
        self.pending: deque[tuple[int, bytes]] = deque()

    def send(self, rank: int, message: TrainingMessage) -> None:
        self.transport.send(rank, _ENCODER.encode(message))

    def receive(self, timeout_s: float, what: str) -> tuple[int, TrainingMessage]:
        """The next message and its sender, waiting (asleep) at most ``timeout_s``."""
        give_up_at = time.monotonic() + timeout_s
        while not self.pending:
            self.pending.extend(self.transport.poll())
            remaining = give_up_at - time.monotonic()
            if not self.pending:
                if remaining <= 0:
                    raise ProtocolAborted(f"no {what} within {timeout_s} s")
                self.transport.wait(min(0.05, remaining))
        source, raw = self.pending.popleft()
        try:
            return source, _DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            raise MalformedMessage(f"undecodable training message ({exc})", source) from None

    def close(self) -> None:
        self.transport.close()
