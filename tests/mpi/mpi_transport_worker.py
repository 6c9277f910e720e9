"""Run under ``mpirun`` by ``test_mpi_transport.py``: exercise MPITransport between real ranks.

``python mpi_transport_worker.py MODE OUTDIR``: every surviving rank writes what it observed
to ``OUTDIR/rank<r>.json``; the test asserts on those files.  Modes:

* ``exchange`` – every rank sends every other rank messages of many sizes (empty to 3 MB, past
  MPI's eager limit); each checks it got all of them, intact and in order per sender.
* ``idle`` – rank 0 waits with nothing arriving (time and CPU spent), then waits for a message
  rank 1 sends 0.3 s later (how soon wait() returns).
* ``dead-peer`` – rank 2 exits at once; rank 1 still sends it small and large messages, then
  closes: close() must return within its grace period although a send can never complete.
* ``dead-sender`` – rank 1 starts a 4 MB send to rank 0 and exits; rank 0 keeps polling:
  no poll may block, and close() must return.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

from mpi4py import MPI

from fedsecure.transport.mpi import MPITransport

SIZES = (0, 1, 100, 4096, 65_536, 200_000, 3_000_000)


def payload(source: int, dest: int, index: int, size: int) -> bytes:
    seed = hashlib.sha256(f"{source}->{dest}#{index}".encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def receive_until(transport, count: int, timeout_s: float) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    give_up_at = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < give_up_at:
        got += transport.poll()
        if len(got) < count:
            transport.wait(0.05)
    return got


def exchange(comm, transport) -> dict:
    rank, world = comm.Get_rank(), comm.Get_size()
    for dest in range(world):
        if dest != rank:
            for i, size in enumerate(SIZES):
                transport.send(dest, payload(rank, dest, i, size))
    got = receive_until(transport, (world - 1) * len(SIZES), timeout_s=60)
    per_source: dict[int, list[bytes]] = {}
    for source, data in got:
        per_source.setdefault(source, []).append(data)
    intact = all(per_source.get(src) == [payload(src, rank, i, s) for i, s in enumerate(SIZES)]
                 for src in range(world) if src != rank)
    give_up_at = time.monotonic() + 30
    while transport.pending_sends and time.monotonic() < give_up_at:
        transport.wait(0.01)
    return {"received": len(got), "intact_in_order": intact,
            "pending_after": transport.pending_sends,
            "types": sorted({type(d).__name__ for _, d in got})}


def idle(comm, transport) -> dict:
    if comm.Get_rank() == 1:
        time.sleep(1.6)
        transport.send(0, b"late")
        return {}
    if comm.Get_rank() != 0:
        return {}
    wall, cpu = time.monotonic(), time.process_time()
    transport.wait(1.0)
    idle_wall, idle_cpu = time.monotonic() - wall, time.process_time() - cpu
    empty_poll = transport.poll()
    began = time.monotonic()
    transport.wait(30.0)  # rank 1 sends at about 1.6 s after start
    woke_after = time.monotonic() - began
    return {"idle_wall_s": idle_wall, "idle_cpu_s": idle_cpu, "empty_poll": len(empty_poll),
            "woke_after_s": woke_after, "then_polled": [d.decode() for _, d in
                                                        receive_until(transport, 1, 10)]}


def dead_peer(comm, transport) -> dict:
    rank = comm.Get_rank()
    if rank == 2:
        os._exit(0)
    time.sleep(0.5)  # rank 2 is gone by now
    if rank == 1:
        transport.send(2, b"small")
        transport.send(2, bytes(2_000_000))
        transport.send(0, b"to the living")
        began = time.monotonic()
        pending = transport.pending_sends
        transport.close()
        return {"pending_before_close": pending, "close_s": time.monotonic() - began,
                "pending_after_close": transport.pending_sends, "poll_after_close":
                len(transport.poll())}
    got = receive_until(transport, 1, timeout_s=30)
    return {"got": [(s, d.decode()) for s, d in got]}


def dead_sender(comm, transport) -> dict:
    rank = comm.Get_rank()
    if rank == 1:
        transport.send(0, bytes(4_000_000))
        os._exit(0)  # at once: rank 0 may see the message announced but never delivered
    if rank != 0:
        return {}
    give_up_at = time.monotonic() + 2.0
    slowest_poll, polled = 0.0, []
    while time.monotonic() < give_up_at:
        began = time.monotonic()
        polled += transport.poll()
        slowest_poll = max(slowest_poll, time.monotonic() - began)
        transport.wait(0.02)
    began = time.monotonic()
    transport.close()
    return {"slowest_poll_s": slowest_poll, "close_s": time.monotonic() - began,
            "delivered_sizes": [len(d) for _, d in polled],
            "lost_receives": transport.lost_receives}


def main() -> None:
    mode, outdir = sys.argv[1], sys.argv[2]
    comm = MPI.COMM_WORLD
    transport = MPITransport(comm, close_grace_s=0.5)
    observed = {"exchange": exchange, "idle": idle, "dead-peer": dead_peer,
                "dead-sender": dead_sender}[mode](comm, transport)
    transport.close()
    with open(os.path.join(outdir, f"rank{comm.Get_rank()}.json"), "w") as fh:
        json.dump({"rank": comm.Get_rank(), **observed}, fh)
    if mode in ("dead-peer", "dead-sender"):
        os._exit(0)  # MPI_Finalize would wait for the dead rank forever


if __name__ == "__main__":
    main()
