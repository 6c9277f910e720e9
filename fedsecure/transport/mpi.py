"""MPI transport: one rank per party, rank == party id (rank 0 the server, ranks 1..n clients).

Only buffer-based (uppercase) mpi4py calls are used, always on raw bytes with ``MPI.BYTE``;
nothing is ever pickled.  The transport never blocks on a peer:

* :meth:`MPITransport.send` posts an ``Isend`` and keeps the request *and its buffer* alive
  until MPI reports completion (checked on every later call);
* :meth:`MPITransport.poll` finds arrived messages with ``Iprobe``, sizes a buffer with
  ``Get_count`` and posts an ``Irecv`` into it.  A receive is never a blocking ``Recv``: a large
  (rendezvous) message whose sender died after announcing it would otherwise hang this rank
  forever.  Completed receives are returned in arrival order per sender;
* :meth:`MPITransport.wait` sleeps with exponential back-off between probes, so an
  oversubscribed machine (more ranks than cores) is not burnt by busy polling;
* :meth:`MPITransport.close` gives pending sends a grace period to complete, then cancels and
  frees whatever is left (e.g. a send to a rank that crashed), so closing never hangs.

Several transports may share one communicator on distinct tags (the MPI runner keeps its
round-control messages on a second tag).  Finalizing MPI is the runner's business, not the
transport's: ``MPI_Finalize`` waits for every rank, including dead ones.
"""

from __future__ import annotations

import time
from collections import deque

from fedsecure.errors import BackendUnavailable, ConfigurationError, LocalProtocolError
from fedsecure.runtime.transport import Transport

try:
    from mpi4py import MPI
except ImportError:  # pragma: no cover - exercised only where the extra is missing
    raise BackendUnavailable("mpi4py", "mpi") from None

DATA_TAG = 1
"""The MPI tag protocol messages travel on (the runner's control channel uses others)."""


class MPITransport(Transport):
    """One party's endpoint on an MPI communicator; its party id is its rank.

    ``tag`` selects the channel; ``min_sleep_s`` / ``max_sleep_s`` bound the back-off of
    :meth:`wait`; ``close_grace_s`` is how long :meth:`close` lets pending sends finish.
    """

    def __init__(
        self,
        comm,
        *,
        tag: int = DATA_TAG,
        min_sleep_s: float = 0.0002,
        max_sleep_s: float = 0.01,
        close_grace_s: float = 2.0,
    ):
        if not isinstance(comm, MPI.Comm) or comm == MPI.COMM_NULL:
            raise ConfigurationError(f"comm={comm!r}: must be an mpi4py communicator")
        if not isinstance(tag, int) or not 0 <= tag <= 32767:
            raise ConfigurationError(f"tag={tag!r}: must be an integer in [0, 32767]")
        if not 0 < min_sleep_s <= max_sleep_s:
            raise ConfigurationError(
                f"min_sleep_s={min_sleep_s!r}, max_sleep_s={max_sleep_s!r}:"
                " need 0 < min_sleep_s <= max_sleep_s"
            )
        if close_grace_s < 0:
            raise ConfigurationError(f"close_grace_s={close_grace_s!r}: must be >= 0")
        self.comm = comm
        self.tag = tag
        self.party_id = comm.Get_rank()
        self.world_size = comm.Get_size()
        self.min_sleep_s = min_sleep_s
        self.max_sleep_s = max_sleep_s
        self.close_grace_s = close_grace_s
        self.closed = False
        self._sends: list[tuple[MPI.Request, bytes]] = []
        self._recvs: deque[tuple[int, bytearray, MPI.Request]] = deque()
        self._status = MPI.Status()

    # ------------------------------------------------------------------ Transport interface

    def send(self, recipient: int, data: bytes) -> None:
        if self.closed:
            return
        if isinstance(recipient, bool) or not isinstance(recipient, int) or not (
            0 <= recipient < self.world_size
        ):
            raise LocalProtocolError(
                f"recipient={recipient!r}: no such rank (world size {self.world_size})"
            )
        payload = data if isinstance(data, bytes) else bytes(data)  # a private, immutable copy
        request = self.comm.Isend([payload, MPI.BYTE], dest=recipient, tag=self.tag)
        self._sends.append((request, payload))
        self._reap_sends()

    def poll(self) -> list[tuple[int, bytes]]:
        if self.closed:
            return []
        self._reap_sends()
        self._post_receives()
        return self._completed_receives()

    def wait(self, timeout_s: float) -> None:
        if self.closed:
            return
        deadline = time.monotonic() + max(0.0, timeout_s)
        sleep_s = self.min_sleep_s
        while not self._has_arrival():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(sleep_s, remaining))
            sleep_s = min(2 * sleep_s, self.max_sleep_s)

    def close(self) -> None:
        """Let pending sends finish for ``close_grace_s``, then cancel and free the rest."""
        if self.closed:
            return
        self.closed = True
        deadline = time.monotonic() + self.close_grace_s
        sleep_s = self.min_sleep_s
        while self._reap_sends() and time.monotonic() < deadline:
            time.sleep(sleep_s)
            sleep_s = min(2 * sleep_s, self.max_sleep_s)
        for request, _ in self._sends:
            _cancel(request)
        for _, _, request in self._recvs:
            _cancel(request)
        self._sends.clear()
        self._recvs.clear()

    # ------------------------------------------------------------------ introspection

    @property
    def pending_sends(self) -> int:
        """Sends posted but not yet reported complete by MPI."""
        return self._reap_sends()

    # ------------------------------------------------------------------ internals

    def _reap_sends(self) -> int:
        """Forget completed sends (their buffers may go); return how many are still pending."""
        self._sends = [(request, buf) for request, buf in self._sends if not request.Test()]
        return len(self._sends)

    def _post_receives(self) -> None:
        status = self._status
        while self.comm.Iprobe(MPI.ANY_SOURCE, self.tag, status):
            source = status.Get_source()
            buf = bytearray(status.Get_count(MPI.BYTE))
            # MPI is non-overtaking per (source, tag): this Irecv matches the probed message.
            request = self.comm.Irecv([buf, MPI.BYTE], source=source, tag=self.tag)
            self._recvs.append((source, buf, request))

    def _completed_receives(self) -> list[tuple[int, bytes]]:
        arrived: list[tuple[int, bytes]] = []
        waiting: deque[tuple[int, bytearray, MPI.Request]] = deque()
        blocked: set[int] = set()  # senders with an earlier receive still in flight
        for source, buf, request in self._recvs:
            if source not in blocked and request.Test():
                arrived.append((source, bytes(buf)))
            else:
                blocked.add(source)
                waiting.append((source, buf, request))
        self._recvs = waiting
        return arrived

    def _has_arrival(self) -> bool:
        self._reap_sends()  # also drives MPI progress for our own pending sends
        if any(request.Test() for _, _, request in self._recvs):
            return True
        return bool(self.comm.Iprobe(MPI.ANY_SOURCE, self.tag))


def _cancel(request) -> None:
    """Cancel and free a request that will not complete (its peer is gone)."""
    if request == MPI.REQUEST_NULL:
        return
    request.Cancel()
    request.Free()
