"""Run one aggregation round with every party in this process: no threads, a virtual clock.

Each party gets a :class:`PartyDriver` over a memory endpoint wrapped in the fault schedule.
The loop steps every driver in turn; when nobody can make progress it jumps the virtual
clock to the next deadline or delayed delivery, so a silent party costs no real waiting.
The same drivers run under MPI with a real clock (``runtime.mpi_runner``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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


def simulate_round(
    aggregator: Aggregator,
    inputs: Mapping[int, tuple[np.ndarray, int]],
    *,
    faults: Sequence[Fault] = (),
    deadlines: Deadlines | None = None,
    reorder_seed: int | None = None,
    on_event: Callable[[int, Event], None] | None = None,
    record_transcript: bool = False,
) -> RoundReport:
    """Run one round. ``inputs`` maps client id -> (vector, integer weight); clients of the
    spec that have no input never show up (they are dropped at the first deadline).
    ``record_transcript`` keeps every delivered (source, recipient, bytes) in the report."""
    unknown = sorted(set(inputs) - set(aggregator.spec.client_ids))
    if unknown:
        raise LocalProtocolError(f"inputs for unknown client ids {unknown}")
    clock = VirtualClock()
    network = MemoryNetwork(reorder_seed=reorder_seed, record=record_transcript)
    events: list[tuple[int, Event]] = []

    def record(party_id: int, event: Event) -> None:
        events.append((party_id, event))
        if on_event is not None:
            on_event(party_id, event)

    def driver_for(party) -> PartyDriver:
        transport = FaultyTransport(network.endpoint(party.party_id), faults, clock)
        return PartyDriver(party, transport, session=aggregator.session, deadlines=deadlines,
                           clock=clock, on_event=record)

    server = aggregator.server()
    drivers = [driver_for(server)]
    for client_id in sorted(inputs):
        client = aggregator.client(client_id)
        vector, weight = inputs[client_id]
        client.set_input(vector, weight)
        drivers.append(driver_for(client))

    server_driver = drivers[0]
    while not all(d.done for d in drivers):
        progress = False
        for driver in drivers:
            if not driver.done:
                progress |= driver.step()
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
        stats={d.party.party_id: d.stats for d in drivers},
        events=events,
        virtual_seconds=clock.now,
        transcript=network.transcript,
    )
