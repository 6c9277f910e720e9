"""Run one aggregation round with every party an MPI rank: ``mpirun -n N`` gives n = N - 1 clients.

Rank 0 is the server, rank r is client r (rank == party id).  Every rank runs the *same*
protocol code as the in-process simulation — a :class:`~fedsecure.runtime.driver.PartyDriver`
stepped by :func:`~fedsecure.runtime.driver.run_party` — over an
:class:`~fedsecure.transport.mpi.MPITransport` wrapped in the shared fault schedule
(:class:`~fedsecure.runtime.faults.FaultyTransport`).

One round, per rank:

1. **Prepare**: a client rank makes its input (``produce_update(r)``); by default every rank
   also runs two small in-process rounds first (``warm_up``, :func:`_warm_up`), so one-off
   costs such as loading compiled kernels are not paid inside the real round's deadlines.
2. **Agree** (the only collectives, done while every rank is certainly alive, and waited for
   by sleeping rather than MPI's busy polling): each rank hashes its own configuration; an
   ``Iallgather`` of the digests makes every rank refuse a mismatch the same way; rank 0
   draws the session id and an ``Iallreduce`` shares it -- the start line, which no rank
   leaves before every rank has reached it (:func:`_agree`).
3. **Run** the party: rank 0 the server, rank r client r.
4. **Wind down**, point to point only, so a dead rank cannot hang anyone, with typed control
   messages (:mod:`fedsecure.runtime.mpi_control`): rank 0 sends ``RoundOver`` to every
   client (a client still waiting -- silent, dropped -- stops); each client sends its
   ``RankStats`` to rank 0; rank 0 waits for the statistics of every rank not scheduled to
   crash (at most ``report_timeout_s``), prints and writes the report, then sends ``Final`` to
   every client that reported, saying whether *all* did.  A control message that does not
   decode, is too large, names another session or another rank is that rank's dropout
   (``bad control message`` in the report), never an abort of the job.
5. **Shut down** (:func:`shutdown`): if every rank reported, ``MPI_Finalize``.  Otherwise a
   rank was lost -- dead, hung (e.g. SIGSTOPped) or misbehaving -- and nobody can tell which
   from here: ``MPI_Finalize`` would wait for it forever.  The clients that reported leave
   with ``os._exit``; rank 0, once its report is out, ends the job with
   ``MPI_Abort(LOST_RANK_EXIT_STATUS)``, which kills whatever is still running, so ``mpirun``
   exits within the round's deadlines plus ``report_timeout_s``, with status 75.

An injected ``Crash`` really ends the rank's process (``os._exit(CRASH_EXIT_STATUS)``) just
before it would send the named message.  A rank killed by a signal from outside is a dropout
too, when the CLI's supervisor (:mod:`fedsecure.runtime.mpi_supervisor`) runs it: MPICH's
Hydra kills the whole job when a rank dies *by a signal*, but not when a process *exits*.
Either way the job must be started with ``mpirun -disable-auto-cleanup``; without it, Hydra
kills every rank as soon as one exits without finalizing (see ``docs/mpi.md``).

mpi4py is imported only when a round runs; the configuration and the synthetic inputs live in
:mod:`fedsecure.runtime.mpi_config`, usable without the ``mpi`` extra.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from fedsecure.config import require
from fedsecure.errors import ConfigurationError, MalformedMessage, ProtocolAborted
from fedsecure.messages import SERVER_ID, SESSION_ID_BYTES
from fedsecure.protocols.base import (
    AggregateResult,
    AggregationSpec,
    ClientDropped,
    Event,
    RoundAborted,
)
from fedsecure.runtime.driver import PartyDriver, run_party
from fedsecure.runtime.faults import FaultyTransport
from fedsecure.runtime.mpi_config import (
    MPIRoundConfig,
    UpdateFn,
    plain_sum,
    synthetic_update,
)
from fedsecure.runtime.mpi_control import (
    MAX_CONTROL_BYTES,
    Final,
    RankStats,
    RoundOver,
    decode_control,
    encode_control,
    stats_as_dict,
)
from fedsecure.transport.base import Transport

CONTROL_TAG = 2
"""MPI tag of the runner's own messages (RoundOver, RankStats, Final); protocol data uses 1."""

CRASH_EXIT_STATUS = 75
"""Exit status of a rank killed by an injected ``Crash`` (``mpirun`` passes it on)."""

FINALIZE_TIMEOUT_S = 30.0
"""How long :func:`shutdown` lets ``MPI_Finalize`` take before giving up on it."""

LOST_RANK_EXIT_STATUS = CRASH_EXIT_STATUS
"""Status of the job (``MPI_Abort`` by rank 0) when a rank was lost: it did not report after
the round -- crashed, killed, hung or sent a bad control message.  The report says whether
the round itself finished."""

# --------------------------------------------------------------------------- the round


@dataclass
class RankOutcome:
    """What one rank takes away: its exit status, whether ``MPI_Finalize`` is safe (every
    rank reported), and on rank 0 the round's report and, when the round finished, its
    result."""

    rank: int
    exit_code: int
    clean: bool
    report: dict | None = None
    result: AggregateResult | None = None
    end_job: bool = False
    """When not ``clean``: end the whole job with ``MPI_Abort`` (rank 0 after a lost rank; a
    client that lost rank 0), which also kills a hung rank."""


class _UntilRoundOver(Transport):
    """A client's data channel that goes quiet once rank 0 announces the end of the round, so
    a client that waits for a message that will never come (it was dropped, or is silent)
    stops: ``alive`` turns False and ``run_party`` returns."""

    def __init__(self, data: Transport, control: Transport, session: bytes):
        self.data = data
        self.control = control
        self.session = session
        self.party_id = data.party_id
        self.round_over = False

    def send(self, recipient: int, data: bytes) -> bool:
        return self.data.send(recipient, data)

    def poll(self) -> list[tuple[int, bytes]]:
        return self.data.poll()

    def wait(self, timeout_s: float) -> None:
        self.data.wait(timeout_s)

    def close(self) -> None:
        self.data.close()

    @property
    def alive(self) -> bool:
        for _message in _from_rank_0(self.control, self.session, RoundOver):
            self.round_over = True
        return not self.round_over


def _from_rank_0(control: Transport, session: bytes, kind: type):
    """The control messages of type ``kind`` from rank 0 that have arrived.  A client trusts
    rank 0 for the wind-down only: anything from another rank, or that does not decode, is
    ignored (a hostile client cannot end another client's round)."""
    for source, raw in control.poll():
        if source != SERVER_ID:
            continue
        try:
            message = decode_control(source, raw, session)
        except MalformedMessage as exc:
            print(f"fedsecure mpi-round: rank {control.party_id}: ignored a control message"
                  f" from rank 0: {exc}", file=sys.stderr, flush=True)
            continue
        if isinstance(message, kind):
            yield message


def run_mpi_round(
    config: MPIRoundConfig,
    *,
    comm=None,
    produce_update: UpdateFn | None = None,
    reference_update: UpdateFn | None = None,
    out_path: str | None = None,
    aggregate_path: str | None = None,
    stdout=None,
    clock: Callable[[], float] = time.monotonic,
    on_start: Callable[[int], None] | None = None,
) -> RankOutcome:
    """Run this rank's part of one round (call it on every rank of ``comm``).

    ``produce_update(client_id) -> (vector, weight)`` makes a client rank's input (default:
    :func:`synthetic_update`).  Rank 0 checks the aggregate against the plain sum of the
    survivors computed with ``reference_update`` (default: ``produce_update`` when that is the
    synthetic default, else no check).  Rank 0 prints the outcome and a per-rank table to
    ``stdout``, writes the JSON report to ``out_path`` and the weighted sum (``.npy``) to
    ``aggregate_path`` if given.  ``on_start(rank)`` is called on every rank once the ranks
    have agreed and the round begins (the CLI's ``--pid-dir`` writes the rank's process id
    there).  Does not finalize MPI: pass the outcome to :func:`shutdown`.
    """
    from mpi4py import MPI

    from fedsecure.transport.mpi import MPITransport

    if produce_update is None:
        produce_update = _synthetic(config)
        reference_update = reference_update or produce_update
    comm, request = (comm if comm is not None else MPI.COMM_WORLD).Idup()
    _complete(request, config.round_timeout_s)
    rank, world = comm.Get_rank(), comm.Get_size()
    n = config.check_world(world)
    update = produce_update(rank) if rank != SERVER_ID else None
    if config.warm_up:
        _warm_up(config, n)
    session = _agree(comm, config, MPI)

    started = clock()
    aggregator = config.aggregator(n, session)
    data = MPITransport(comm)
    control = MPITransport(comm, tag=CONTROL_TAG, max_message_bytes=MAX_CONTROL_BYTES)
    events: list[tuple[int, Event]] = []
    if rank == SERVER_ID:
        party, endpoint = aggregator.server(), data
    else:
        party = aggregator.client(rank)
        party.set_input(*update)
        endpoint = _UntilRoundOver(data, control, session)
    transport = FaultyTransport(endpoint, config.faults, clock,
                                on_crash=lambda: _crash(rank, config))
    driver = PartyDriver(party, transport, deadlines=config.deadlines(),
                         clock=clock, on_event=lambda pid, ev: events.append((pid, ev)))
    if on_start is not None:
        on_start(rank)
    began = clock()
    run_party(driver)
    stats = _rank_stats(rank, driver, events, config, began, clock() - began, session)

    if rank == SERVER_ID:
        outcome = _finish_server(config, aggregator, party, events, stats, control,
                                 reference_update, stdout or sys.stdout, started, clock,
                                 out_path, aggregate_path)
    else:
        outcome = _finish_client(rank, config, stats, endpoint, started, clock)
    data.close()
    control.close()
    comm.Free()  # a local operation in MPICH; without it a long job runs out of communicators
    return outcome


def shutdown(outcome: RankOutcome) -> int:
    """End this rank: ``MPI_Finalize`` when every rank is known alive; else flush and exit at
    once (finalizing would wait forever for a lost rank), ending the whole job with
    ``MPI_Abort(LOST_RANK_EXIT_STATUS)`` when ``outcome.end_job`` (so a hung rank cannot keep
    ``mpirun`` waiting).  Returns the exit status when it returns at all."""
    from mpi4py import MPI

    sys.stdout.flush()
    sys.stderr.flush()
    if outcome.clean:
        # A rank that dies between its report and MPI_Finalize would hold every rank in
        # MPI_Finalize forever; past FINALIZE_TIMEOUT_S the watchdog (a C thread: Finalize
        # holds the GIL) dumps where this rank waits and exits with status 1.
        faulthandler.dump_traceback_later(FINALIZE_TIMEOUT_S, exit=True)
        MPI.Finalize()
        faulthandler.cancel_dump_traceback_later()
        return outcome.exit_code
    if outcome.end_job:
        MPI.COMM_WORLD.Abort(LOST_RANK_EXIT_STATUS)
    os._exit(outcome.exit_code)


def run_rank(body: Callable[[], RankOutcome]) -> int:
    """Run this rank's part of an MPI job (``body``), then end the rank with :func:`shutdown`.

    A :class:`ConfigurationError` propagates: it is raised alike on every rank, before any
    work or by a collective agreement.  Any other failure must not leave the job hanging: on
    rank 0 the traceback is printed and ``MPI_Abort`` ends the whole job (nobody can go on
    without the server); a client rank prints it and exits with status 1, like a crashed one.
    """
    from mpi4py import MPI

    try:
        outcome = body()
    except ConfigurationError:
        raise
    except Exception:  # noqa: BLE001 - any other failure must not leave the job hanging
        traceback.print_exc()
        sys.stderr.flush()
        if MPI.COMM_WORLD.Get_rank() == SERVER_ID:
            MPI.COMM_WORLD.Abort(1)
        os._exit(1)
    return shutdown(outcome)


# --------------------------------------------------------------------------- internals


def _synthetic(config: MPIRoundConfig) -> UpdateFn:
    return lambda client_id: synthetic_update(config, client_id)


DIGEST_BYTES = 32
ERROR_TEXT_BYTES = 1000
AGREEMENT_RECORD_BYTES = 1 + DIGEST_BYTES + ERROR_TEXT_BYTES
"""One rank's record in :func:`agree_on_configuration`: a failure flag, the digest and up to
ERROR_TEXT_BYTES of its error message (UTF-8, zero-padded)."""


def agree_on_configuration(comm, digest: bytes, *, what: str, timeout_s: float,
                           error: str | None = None) -> None:
    """Collectively check that every rank of ``comm`` passed the same ``digest`` (32 bytes)
    and that none failed its own checks (``error``: that rank's one-line message).

    Call it on every rank, while every rank is alive.  Each rank raises the same
    :class:`ConfigurationError`: the lowest failing rank's message, else the ranks whose
    ``what`` differs from rank 0's.  A non-blocking ``Iallgather`` completed with a sleeping
    wait, so ranks that start early do not spin while the others are still importing.
    """
    from mpi4py import MPI

    require(len(digest) == DIGEST_BYTES, "digest", digest, f"must be {DIGEST_BYTES} bytes")
    world = comm.Get_size()
    text = (error or "").encode("utf-8", "replace")[:ERROR_TEXT_BYTES]
    mine = np.zeros(AGREEMENT_RECORD_BYTES, dtype=np.uint8)
    mine[0] = error is not None
    mine[1:1 + DIGEST_BYTES] = np.frombuffer(digest, dtype=np.uint8)
    mine[1 + DIGEST_BYTES:1 + DIGEST_BYTES + len(text)] = np.frombuffer(text, dtype=np.uint8)
    everyone = np.empty((world, AGREEMENT_RECORD_BYTES), dtype=np.uint8)
    _complete(comm.Iallgather([mine, MPI.BYTE], [everyone, MPI.BYTE]), timeout_s)
    for rank, record in enumerate(everyone):
        if record[0]:
            message = record[1 + DIGEST_BYTES:].tobytes().rstrip(b"\0")
            raise ConfigurationError(f"rank {rank}: {message.decode('utf-8', 'ignore')}")
    digests = everyone[:, 1:1 + DIGEST_BYTES]
    differing = [r for r in range(world) if not np.array_equal(digests[r], digests[0])]
    if differing:
        raise ConfigurationError(
            f"rank {comm.Get_rank()}: ranks {differing} run a different {what}"
            " (same options and config file on every host?)")


def _agree(comm, config: MPIRoundConfig, MPI) -> bytes:
    """Check that every rank runs the same configuration, then share rank 0's session id.

    The id travels in an all-reduce (bitwise OR of rank 0's random bytes with everyone else's
    zeros) rather than a broadcast, which makes it the round's *start line*: an all-reduce
    completes on a rank only once every rank has joined it, so rank 0 cannot start the round
    (and its clock) while a client is still in the agreement.  A broadcast completes at its
    root at once; the clients then trailed rank 0 by up to the back-off of the ranks that
    relay it (~5-30 ms on 8 ranks over 2 cores).  The ranks join it together -- they have
    just left the agreement -- so their waits, and the back-off, are short.
    """
    agree_on_configuration(comm, config.digest(comm.Get_size()), what="round configuration",
                           timeout_s=config.round_timeout_s)
    mine = np.zeros(SESSION_ID_BYTES, dtype=np.uint8)
    if comm.Get_rank() == SERVER_ID:
        mine[:] = np.frombuffer(os.urandom(SESSION_ID_BYTES), dtype=np.uint8)
    session = np.empty_like(mine)
    _complete(comm.Iallreduce([mine, MPI.BYTE], [session, MPI.BYTE], op=MPI.BOR),
              config.round_timeout_s)
    return session.tobytes()


def _complete(request, timeout_s: float) -> None:
    """Wait for a start-up collective, sleeping between tests (the transport's back-off: a
    fraction of the time waited so far), at most ``timeout_s``."""
    from fedsecure.transport.mpi import idle_sleep_s

    began = time.monotonic()
    while not request.Test():
        waited = time.monotonic() - began
        if waited > timeout_s:
            raise ProtocolAborted(f"not every rank started within round_timeout_s={timeout_s}")
        time.sleep(idle_sleep_s(waited))


WARM_UP_MAX_VALUES = 1 << 20
"""The longest vector the warm-up's second round uses (memory: a few copies per client)."""


def _warm_up(config: MPIRoundConfig, n: int) -> None:
    """Two small rounds of the same protocol in this process, so a rank's one-off costs are
    not paid inside the real round's deadlines: a tiny one (at most 8 clients, 64 values) --
    first calls compile or load kernels and import lazily-imported modules -- then one of 3
    clients at the round's own vector length (at most ``WARM_UP_MAX_VALUES``), so the
    process's heap has grown to the round's buffer sizes.  Without that, every rank touched
    its buffers' pages for the first time inside the round (about 430 page faults per client
    rank at d = 10^5, ~4 us each on the development VM), which a process that has already
    run a round -- the in-process benchmark after its warm-up, or any later round of a
    training job -- does not pay."""
    from fedsecure.runtime.simulation import simulate_round

    for clients, length in ((min(n, 8), min(config.dim, 64)),
                            (min(n, 3), min(config.dim, WARM_UP_MAX_VALUES))):
        spec = AggregationSpec(n_clients=clients, vector_length=length,
                               max_weight=config.max_weight, clip=config.clip)
        simulate_round(config.build(spec),
                       {c: (np.zeros(spec.vector_length), 1) for c in spec.client_ids})


def _crash(rank: int, config: MPIRoundConfig) -> None:
    print(f"fedsecure mpi-round: rank {rank}: injected crash ({config.faults_of(rank)}), "
          "exiting now", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(CRASH_EXIT_STATUS)


def _rank_stats(rank, driver, events, config, started_at, round_s, session) -> RankStats:
    party = driver.party
    aborted = next((ev.reason for pid, ev in events
                    if pid == rank and isinstance(ev, RoundAborted)), None)
    if driver.gave_up:
        status = "gave up waiting"
    elif aborted is not None:
        status = "aborted" if rank == SERVER_ID else "stopped by server"
    elif party.done:
        status = "finished"
    else:
        status = "stopped at round end"
    s = driver.stats
    return RankStats(
        session=session, rank=rank, role="server" if rank == SERVER_ID else "client",
        status=status, fault=config.faults_of(rank), started_at=started_at, round_s=round_s,
        compute_s=s.total_seconds, cpu_s=s.total_cpu_seconds,
        bytes_sent=s.total_bytes_sent, bytes_received=s.total_bytes_received,
        seconds_by_phase=dict(s.seconds_by_phase),
        cpu_seconds_by_phase=dict(s.cpu_seconds_by_phase),
        bytes_sent_by_message=dict(s.bytes_sent))


def _finish_client(rank, config, stats, endpoint: _UntilRoundOver, started, clock
                   ) -> RankOutcome:
    """Report once the round is over (so a rank that dies during the round, even after its
    own part, is always missing from the report), then wait for ``Final``."""
    give_up_at = started + config.round_timeout_s
    control, session = endpoint.control, endpoint.session
    reported = False
    while clock() < give_up_at:
        if not reported and not endpoint.alive:  # RoundOver has arrived
            control.send(SERVER_ID, encode_control(stats))
            reported = True
        if reported:
            for final in _from_rank_0(control, session, Final):
                return RankOutcome(rank, 0, clean=final.clean)
        control.wait(min(0.05, max(0.0, give_up_at - clock())))
    print(f"fedsecure mpi-round: rank {rank}: no word from rank 0 within round_timeout_s="
          f"{config.round_timeout_s}; ending the job", file=sys.stderr, flush=True)
    return RankOutcome(rank, 1, clean=False, end_job=True)


def _collect_stats(config, n, session, control, clock) -> tuple[dict[int, RankStats],
                                                                 dict[int, str]]:
    """Rank 0 gathers the clients' statistics until every rank expected alive has reported,
    at most ``report_timeout_s``; a rank whose control message is bad is dropped (reason)."""
    reports: dict[int, RankStats] = {}
    bad: dict[int, str] = {}
    expected = set(range(1, n + 1)) - config.crashing_ranks()
    give_up_at = clock() + config.report_timeout_s
    while True:
        for source, raw in control.poll():
            if source in bad or source in reports:
                continue  # a rank reports once; anything after that is ignored
            try:
                message = decode_control(source, raw, session)
                if not isinstance(message, RankStats) or not 1 <= source <= n:
                    raise MalformedMessage(f"unexpected {type(message).__name__}", source)
            except MalformedMessage as exc:
                bad[source] = str(exc)
                continue
            reports[source] = message
        for source, size in control.refused:  # never received: too large to take
            if source not in reports:
                bad.setdefault(source, f"control message of {size} bytes (at most"
                                       f" {MAX_CONTROL_BYTES})")
        if expected <= reports.keys() | bad.keys() or clock() >= give_up_at:
            return reports, bad
        control.wait(min(0.05, max(0.0, give_up_at - clock())))


def _finish_server(config, aggregator, server, events, stats, control, reference_update,
                   stdout, started, clock, out_path, aggregate_path) -> RankOutcome:
    n = aggregator.spec.n_clients
    session = aggregator.session
    outcome = "aborted" if server.aborted is not None else "finished"
    for client in range(1, n + 1):
        control.send(client, encode_control(RoundOver(session=session, outcome=outcome)))
    reports, bad = _collect_stats(config, n, session, control, clock)
    reports[SERVER_ID] = stats
    missing = [r for r in range(1, n + 1) if r not in reports]

    report = _round_report(config, aggregator, server, events,
                           {r: stats_as_dict(s) for r, s in reports.items()}, bad, missing,
                           reference_update, clock() - started)
    print(format_summary(report), file=stdout, flush=True)
    if out_path:  # written before anyone is told to exit
        with open(out_path, "w") as fh:
            json.dump(report, fh, indent=2)
    if aggregate_path and server.aborted is None:
        np.save(aggregate_path, server.result().weighted_sum)
    clean = not missing
    for client in sorted(reports):
        if client != SERVER_ID:
            control.send(client, encode_control(Final(session=session, clean=clean)))
    check = report["check"]
    ok = outcome == "finished" and (check is None or check["ok"])
    return RankOutcome(SERVER_ID, 0 if ok else 1, clean=clean, report=report,
                       result=None if server.aborted is not None else server.result(),
                       end_job=not clean)


def _round_report(config, aggregator, server, events, reports, bad, missing, reference_update,
                  wall_s) -> dict:
    n = aggregator.spec.n_clients
    dropouts = [{"client": ev.client, "phase": ev.phase, "reason": ev.reason}
                for pid, ev in events if pid == SERVER_ID and isinstance(ev, ClientDropped)]
    report = {
        "protocol": config.protocol, "dp": None if config.dp is None else config.dp["placement"],
        "n_clients": n, "dim": config.dim,
        "world_size": n + 1, "session": aggregator.session.hex(), "config": config.to_json(),
        "outcome": "finished", "error": None, "survivors": [], "dropped": [],
        "dropouts": dropouts, "check": None, "round_s": reports[SERVER_ID]["round_s"],
        "wall_s": wall_s,
        "ranks": [reports.get(r, {"rank": r, "role": "client",
                                  "status": "bad control message" if r in bad else "no report",
                                  "fault": config.faults_of(r), "error": bad.get(r)})
                  for r in range(n + 1)],
        "missing_reports": missing, "bad_control": {str(r): bad[r] for r in sorted(bad)},
        "clean_shutdown": not missing,
        "quantization_error": aggregator.quantization_error,
        "bytes_total": sum(r.get("bytes_sent", 0) for r in reports.values()),
        "phase_seconds": _phase_seconds(reports),
    }
    if server.aborted is not None:
        report.update(outcome="aborted", error=str(server.aborted))
        return report
    result = server.result()
    report.update(survivors=list(result.survivors), dropped=list(result.dropped))
    if reference_update is not None:
        expected, weight = plain_sum(reference_update, result.survivors, config.clip)
        error = float(np.max(np.abs(result.weighted_sum - expected)))
        # the protocol's bound on the mean, scaled to the sum (plus float round-off)
        bound = aggregator.quantization_error * weight
        tolerance = bound + 1e-9 * max(1.0, float(np.max(np.abs(expected))))
        report["check"] = {
            "max_abs_error": error, "tolerance": tolerance,
            "total_weight": result.total_weight, "expected_total_weight": weight,
            "ok": error <= tolerance and result.total_weight == weight,
        }
    return report


def _phase_seconds(reports: Mapping[int, dict]) -> dict[str, float]:
    """CPU seconds by protocol phase, ``server:<phase>`` for rank 0 and ``clients:<phase>``
    summed over the client ranks that reported (the simulation's ``phase_seconds`` format)."""
    total: dict[str, float] = {}
    for rank, stats in sorted(reports.items()):
        role = "server" if rank == SERVER_ID else "clients"
        for phase, seconds in stats["cpu_seconds_by_phase"].items():
            total[f"{role}:{phase}"] = total.get(f"{role}:{phase}", 0.0) + seconds
    return total


def format_summary(report: dict) -> str:
    """The outcome line(s) and a per-rank table, as rank 0 prints them."""
    inside = "" if report["dp"] is None else f" inside {report['dp']} DP"
    lines = [(f"mpi-round: protocol {report['protocol']}{inside}, {report['n_clients']} client"
              f" ranks x {report['dim']} values, session {report['session'][:8]}...")]
    if report["outcome"] == "aborted":
        lines.append(f"round ABORTED: {report['error']}")
    else:
        lines.append(f"round finished: survivors {report['survivors']}, "
                     f"dropped {report['dropped']}")
        check = report["check"]
        if check is not None:
            lines.append(f"aggregate check: max |sum - plain sum of survivors| = "
                         f"{check['max_abs_error']:.3g} (tolerance {check['tolerance']:.3g}), "
                         f"total weight {check['total_weight']:g} "
                         f"(plain {check['expected_total_weight']:g}): "
                         f"{'OK' if check['ok'] else 'MISMATCH'}")
    for d in report["dropouts"]:
        lines.append(f"  dropped client {d['client']} in {d['phase']}: {d['reason']}")
    for rank, reason in report["bad_control"].items():
        lines.append(f"  dropped rank {rank} from the wind-down: {reason}")
    lines.append(f"{'rank':>4}  {'role':<6} {'status':<22} {'fault':<24}"
                 f"{'sent B':>10}{'recv B':>10}{'cpu s':>8}{'round s':>9}")
    for r in report["ranks"]:
        if "bytes_sent" in r:
            numbers = (f"{r['bytes_sent']:>10}{r['bytes_received']:>10}"
                       f"{r['cpu_s']:>8.3f}{r['round_s']:>9.2f}")
        else:
            numbers = f"{'-':>10}{'-':>10}{'-':>8}{'-':>9}"
        lines.append(f"{r['rank']:>4}  {r['role']:<6} {r['status']:<22} "
                     f"{r['fault'] or '-':<24}{numbers}")
    lines.append(f"round {report['round_s']:.2f} s (rank 0), {report['wall_s']:.2f} s with the "
                 "wind-down; "
                 + ("every rank reported" if report["clean_shutdown"]
                    else f"no report from ranks {report['missing_reports']} (dead, hung or"
                         " bad): ending the job"))
    return "\n".join(lines)
