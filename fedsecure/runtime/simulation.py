"""Run one aggregation round with every party in this process: no threads, a virtual clock.

Each party gets a :class:`PartyDriver` over a memory endpoint wrapped in the fault schedule.
The loop steps every driver in turn; when nobody can make progress it jumps the virtual
clock to the next deadline or delayed delivery, so a silent party costs no real waiting.
The same drivers run under MPI with a real clock (``runtime.mpi_runner``).

Lean mode (``lean=True``, for 1000+ clients x 10^6 values on one machine): the same drivers
and parties, held differently.  Inputs may be a callable ``client_id -> (vector, weight)``,
called only when the client's protocol first reads its input
(:meth:`~fedsecure.protocols.phased.PhasedClient.set_input_source`; for SecAgg, when it
masks; its CPU goes to ``PartyStats.input_cpu_seconds``, not to the client's phases), so
neither the caller nor the clients hold every vector at once; the server is
stepped after every client step, so at most one upload waits in its inbox (instead of n);
and a client's driver and party are released as soon as it has answered its last message
(only its :class:`PartyStats` are kept).  What stays is what the protocol itself holds: the
clients' keys and shares, the input of the one client masking, the server's running sum.
``RoundReport.peak_rss_bytes`` is the process's peak resident memory during the round (Linux:
VmHWM, reset at the start).
"""

from __future__ import annotations

import resource
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from fedsecure.errors import LocalProtocolError, ProtocolAborted
from fedsecure.messages import SERVER_ID
from fedsecure.protocols.base import AggregateResult, Aggregator, Event
from fedsecure.runtime.driver import Deadlines, PartyDriver, PartyStats
from fedsecure.runtime.faults import Fault, FaultyTransport
from fedsecure.transport.memory import MemoryNetwork


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance_to(self, t: float) -> None:
        self.now = max(self.now, t)


@dataclass
class RoundReport:
    """What one round produced and cost."""

    result: AggregateResult | None
    error: ProtocolAborted | None
    stats: dict[int, PartyStats]
    events: list[tuple[int, Event]] = field(default_factory=list)
    virtual_seconds: float = 0.0
    transcript: list[tuple[int, int, bytes]] | None = None
    peak_rss_bytes: int | None = None

    @property
    def server_stats(self) -> PartyStats:
        return self.stats[SERVER_ID]

    @property
    def bytes_total(self) -> int:
        return sum(s.total_bytes_sent for s in self.stats.values())

    def seconds_by_phase(self, party: str = "server", cpu: bool = True) -> dict[str, float]:
        """CPU (or wall) seconds of the server's own work, or of all clients summed
        (``party="clients"``), by that party's phase."""
        total: dict[str, float] = defaultdict(float)
        for pid, stats in self.stats.items():
            if (pid == SERVER_ID) == (party == "server"):
                source = stats.cpu_seconds_by_phase if cpu else stats.seconds_by_phase
                for phase, seconds in source.items():
                    total[phase] += seconds
        return dict(total)

    @property
    def phase_seconds(self) -> dict[str, float]:
        """CPU seconds by phase name, prefixed ``server:`` / ``clients:``."""
        out = {f"server:{k}": v for k, v in self.seconds_by_phase("server").items()}
        out.update({f"clients:{k}": v for k, v in self.seconds_by_phase("clients").items()})
        return out


Inputs = Mapping[int, tuple[np.ndarray, int]] | Callable[[int], tuple[np.ndarray, int]]


def simulate_round(
    aggregator: Aggregator,
    inputs: Inputs,
    *,
    faults: Sequence[Fault] = (),
    deadlines: Deadlines | None = None,
    reorder_seed: int | None = None,
    on_event: Callable[[int, Event], None] | None = None,
    record_transcript: bool = False,
    lean: bool = False,
) -> RoundReport:
    """Run one round. ``inputs`` maps client id -> (vector, integer weight); clients of the
    spec that have no input never show up (they are dropped at the first deadline).  A
    callable ``inputs(client_id)`` gives every client of the spec its input, made on demand
    (in lean mode only when the client first needs it).
    ``record_transcript`` keeps every delivered (source, recipient, bytes) in the report;
    ``lean`` holds the parties as the module docstring says."""
    if callable(inputs):
        client_ids, input_of = list(aggregator.spec.client_ids), inputs
    else:
        unknown = sorted(set(inputs) - set(aggregator.spec.client_ids))
        if unknown:
            raise LocalProtocolError(f"inputs for unknown client ids {unknown}")
        client_ids, input_of = sorted(inputs), inputs.__getitem__
    reset_peak_rss()
    clock = VirtualClock()
    network = MemoryNetwork(reorder_seed=reorder_seed, record=record_transcript)
    events: list[tuple[int, Event]] = []

    def record(party_id: int, event: Event) -> None:
        events.append((party_id, event))
        if on_event is not None:
            on_event(party_id, event)

    def driver_for(party) -> PartyDriver:
        transport = FaultyTransport(network.endpoint(party.party_id), faults, clock)
        return PartyDriver(party, transport, deadlines=deadlines,
                           clock=clock, on_event=record)

    server = aggregator.server()
    server_driver = driver_for(server)
    drivers = [server_driver]
    for client_id in client_ids:
        client = aggregator.client(client_id)
        driver = driver_for(client)
        if lean and callable(inputs) and hasattr(client, "set_input_source"):
            # made inside the client's step, its CPU not counted as the client's (stats)
            client.set_input_source(partial(driver.untimed, partial(input_of, client_id)))
        else:
            client.set_input(*input_of(client_id))
        drivers.append(driver)
    stats = {d.party.party_id: d.stats for d in drivers}

    while not all(d.done for d in drivers):
        progress = False
        for driver in drivers:
            if not driver.done:
                stepped = driver.step()
                progress |= stepped
                if lean and stepped and driver is not server_driver and not server_driver.done:
                    server_driver.step()  # take the upload now: one at a time in the inbox
        if lean:  # release the clients that have answered their last message
            drivers = [d for d in drivers if d is server_driver or not d.done]
        if progress:
            continue
        wakeups = [w for d in drivers if not d.done and (w := d.next_wakeup()) is not None]
        if not wakeups:
            break
        clock.advance_to(min(wakeups))

    result, error = None, None
    if server.aborted is not None:
        error = server.aborted
    elif server_driver.party.done:
        result = server.result()
    else:
        error = ProtocolAborted("the round stalled: no party could make progress")
    return RoundReport(
        result=result,
        error=error,
        stats=stats,
        events=events,
        virtual_seconds=clock.now,
        transcript=network.transcript,
        peak_rss_bytes=peak_rss_bytes(),
    )


def reset_peak_rss() -> None:
    """Restart the process's peak-RSS mark (Linux ``clear_refs``; elsewhere a no-op, and the
    peak is then the process's lifetime peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_rss_bytes() -> int:
    """Peak resident memory since :func:`reset_peak_rss` (VmHWM), or the lifetime peak."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
