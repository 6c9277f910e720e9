"""MPI transport: one rank per party, rank == party id (rank 0 the server, ranks 1..n clients).

Only buffer-based (uppercase) mpi4py calls are used, always on raw bytes with ``MPI.BYTE``;
nothing is ever pickled.  The transport never blocks on a peer:

* :meth:`MPITransport.send` posts an ``Isend`` and keeps the request *and its buffer* alive
  until MPI reports completion (checked on every later call);
* :meth:`MPITransport.poll` finds arrived messages with ``Iprobe``, sizes a buffer with
  ``Get_count`` and posts an ``Irecv`` into it.  A receive is never a blocking ``Recv``: a large
  (rendezvous) message whose sender died after announcing it would otherwise hang this rank
  forever.  Completed receives are returned in arrival order per sender;
* :meth:`MPITransport.wait` sleeps between probes, so an oversubscribed machine (more ranks
  than cores) is not burnt by busy polling.  Each sleep is a fixed fraction of how long the
  endpoint has been idle (:func:`idle_sleep_s`, within ``[min_sleep_s, max_sleep_s]``): a
  message that follows quickly on the last one is seen within a fraction of a millisecond,
  while a rank that waits for seconds wakes only every ``max_sleep_s``;
* with ``max_message_bytes``, a message announced larger than that is never given a buffer
  of its size: it is received into an empty one (MPI discards it as truncated) and recorded
  in :attr:`MPITransport.refused` as ``(source, size)``, for the caller to drop the sender;
* a transfer that MPI reports as failed — typically a peer that died mid-message, which
  MPICH's single-copy path reports as ``process_vm_readv failed`` — is dropped and counted
  (``lost_receives`` / ``lost_sends``): to the protocol that peer simply went silent;
* :meth:`MPITransport.close` gives pending sends a grace period to complete, then cancels and
  frees whatever is left (e.g. a send to a rank that crashed), so closing never hangs.

Several transports may share one communicator on distinct tags (the MPI runner keeps its
round-control messages on a second tag).  Finalizing MPI is the runner's business, not the
transport's: ``MPI_Finalize`` waits for every rank, including dead ones.
"""

from __future__ import annotations

import time

from fedsecure.errors import BackendUnavailable, ConfigurationError, LocalProtocolError
from fedsecure.transport.base import Transport

try:
    from mpi4py import MPI
except ImportError:  # pragma: no cover - exercised only where the extra is missing
    raise BackendUnavailable("mpi4py", "mpi") from None

DATA_TAG = 1
"""The MPI tag protocol messages travel on (the runner's control channel uses others)."""

MIN_SLEEP_S = 0.00005
MAX_SLEEP_S = 0.01
IDLE_FRACTION = 0.02
"""Default back-off: sleep 2 % of the time waited so far, between 0.05 ms and 10 ms (measured
against 5 % / 0.2 ms on 8 ranks over 2 cores: docs/mpi.md, "Overhead")."""


def idle_sleep_s(idle_s: float, min_sleep_s: float = MIN_SLEEP_S,
                 max_sleep_s: float = MAX_SLEEP_S, fraction: float = IDLE_FRACTION) -> float:
    """How long to sleep before the next probe after ``idle_s`` seconds without news: the
    latency this adds is at most ``fraction`` of the wait so far (bounded below and above)."""
    return min(max_sleep_s, max(min_sleep_s, fraction * idle_s))


class MPITransport(Transport):
    """One party's endpoint on an MPI communicator; its party id is its rank.

    ``tag`` selects the channel; ``min_sleep_s`` / ``max_sleep_s`` bound the back-off of
    :meth:`wait` (see :func:`idle_sleep_s`); ``close_grace_s`` is how long :meth:`close` lets
    pending sends finish; ``max_message_bytes`` (default: no cap) bounds what a peer can
    make this endpoint allocate.
    """

    def __init__(
        self,
        comm,
        *,
        tag: int = DATA_TAG,
        min_sleep_s: float = MIN_SLEEP_S,
        max_sleep_s: float = MAX_SLEEP_S,
        close_grace_s: float = 2.0,
        max_message_bytes: int | None = None,
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
        if max_message_bytes is not None and (
                not isinstance(max_message_bytes, int) or max_message_bytes < 0):
            raise ConfigurationError(
                f"max_message_bytes={max_message_bytes!r}: must be an integer >= 0, or None")
        self.comm = comm
        self.tag = tag
        self.party_id = comm.Get_rank()
        self.world_size = comm.Get_size()
        self.min_sleep_s = min_sleep_s
        self.max_sleep_s = max_sleep_s
        self.close_grace_s = close_grace_s
        self.closed = False
        self.max_message_bytes = max_message_bytes
        self.lost_sends = 0
        self.lost_receives = 0
        self.refused: list[tuple[int, int]] = []
        self._sends: list[_Transfer] = []
        self._recvs: list[_Transfer] = []
        self._status = MPI.Status()
        self._last_news = time.monotonic()  # the last send or arrival: the back-off's origin

    # ------------------------------------------------------------------ Transport interface

    def send(self, recipient: int, data: bytes) -> bool:
        if self.closed:
            return False
        if isinstance(recipient, bool) or not isinstance(recipient, int) or not (
            0 <= recipient < self.world_size
        ):
            raise LocalProtocolError(
                f"recipient={recipient!r}: no such rank (world size {self.world_size})"
            )
        payload = data if isinstance(data, bytes) else bytes(data)  # a private, immutable copy
        request = self.comm.Isend([payload, MPI.BYTE], dest=recipient, tag=self.tag)
        self._sends.append(_Transfer(recipient, payload, request))
        self._reap_sends()
        self._last_news = time.monotonic()  # an answer may follow soon
        return True

    def poll(self) -> list[tuple[int, bytes]]:
        if self.closed:
            return []
        self._reap_sends()
        self._post_receives()
        arrived = self._completed_receives()
        if arrived:
            self._last_news = time.monotonic()
        return arrived

    def wait(self, timeout_s: float) -> None:
        if self.closed:
            return
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not self._has_arrival():
            now = time.monotonic()
            if now >= deadline:
                return
            sleep_s = idle_sleep_s(now - self._last_news, self.min_sleep_s, self.max_sleep_s)
            time.sleep(min(sleep_s, deadline - now))

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
        for transfer in self._sends + self._recvs:
            transfer.cancel()
        self._sends.clear()
        self._recvs.clear()

    # ------------------------------------------------------------------ introspection

    @property
    def pending_sends(self) -> int:
        """Sends posted but not yet reported complete by MPI."""
        return self._reap_sends()

    # ------------------------------------------------------------------ internals

    def _reap_sends(self) -> int:
        """Forget completed (or failed) sends; return how many are still pending."""
        pending = []
        for transfer in self._sends:
            state = transfer.check()
            if state is _PENDING:
                pending.append(transfer)
            elif state is _FAILED:
                self.lost_sends += 1
        self._sends = pending
        return len(pending)

    def _post_receives(self) -> None:
        status = self._status
        while self.comm.Iprobe(MPI.ANY_SOURCE, self.tag, status):
            source, size = status.Get_source(), status.Get_count(MPI.BYTE)
            oversized = self.max_message_bytes is not None and size > self.max_message_bytes
            if oversized:
                self.refused.append((source, size))
            buf = bytearray(0 if oversized else size)
            # MPI is non-overtaking per (source, tag): this Irecv matches the probed message.
            request = self.comm.Irecv([buf, MPI.BYTE], source=source, tag=self.tag)
            self._recvs.append(_Transfer(source, buf, request))

    def _completed_receives(self) -> list[tuple[int, bytes]]:
        arrived: list[tuple[int, bytes]] = []
        waiting: list[_Transfer] = []
        blocked: set[int] = set()  # senders with an earlier receive still in flight
        for transfer in self._recvs:
            state = _PENDING if transfer.peer in blocked else transfer.check()
            if state is _DONE:
                arrived.append((transfer.peer, bytes(transfer.buffer)))
            elif state is _FAILED:
                self.lost_receives += 1
            else:
                blocked.add(transfer.peer)
                waiting.append(transfer)
        self._recvs = waiting
        return arrived

    def _has_arrival(self) -> bool:
        self._reap_sends()  # also drives MPI progress for our own pending sends
        if any(transfer.check() is not _PENDING for transfer in self._recvs):
            return True
        return bool(self.comm.Iprobe(MPI.ANY_SOURCE, self.tag))


_PENDING, _DONE, _FAILED = "pending", "done", "failed"


class _Transfer:
    """One posted Isend/Irecv, its buffer (kept alive until MPI is done with it) and its state."""

    __slots__ = ("buffer", "peer", "request", "state")

    def __init__(self, peer: int, buffer, request):
        self.peer = peer
        self.buffer = buffer
        self.request = request
        self.state = _PENDING

    def check(self) -> str:
        """Test once more while pending; a failure (e.g. the peer died mid-message) is final."""
        if self.state is _PENDING:
            try:
                if self.request.Test():
                    self.state = _DONE
            except MPI.Exception:
                self.state = _FAILED  # MPI has released the request
        return self.state

    def cancel(self) -> None:
        """Cancel and free a transfer that will not complete (its peer is gone)."""
        if self.check() is _PENDING:
            try:
                self.request.Cancel()
                self.request.Free()
            except MPI.Exception:
                self.state = _FAILED  # nothing left to release
