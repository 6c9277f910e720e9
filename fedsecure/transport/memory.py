"""In-process transport: every party's endpoint lives in one process, with no threads.

Messages are delivered in send order, or in a seeded random order (``reorder_seed``) to show
that protocols do not depend on arrival order.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque

from fedsecure.transport.base import Transport


class MemoryNetwork:
    """Mailboxes keyed by party id."""

    def __init__(self, *, reorder_seed: int | None = None, record: bool = False):
        self._inboxes: dict[int, deque[tuple[int, bytes]]] = defaultdict(deque)
        self.transcript: list[tuple[int, int, bytes]] | None = [] if record else None
        self._shuffle = random.Random(reorder_seed).shuffle if reorder_seed is not None else None

    def endpoint(self, party_id: int) -> MemoryTransport:
        return MemoryTransport(self, party_id)

    def post(self, source: int, recipient: int, data: bytes) -> None:
        self._inboxes[recipient].append((source, bytes(data)))
        if self.transcript is not None:
            self.transcript.append((source, recipient, bytes(data)))

    def collect(self, party_id: int) -> list[tuple[int, bytes]]:
        inbox = self._inboxes[party_id]
        messages = list(inbox)
        inbox.clear()
        if self._shuffle is not None:
            self._shuffle(messages)
        return messages


class MemoryTransport(Transport):
    def __init__(self, network: MemoryNetwork, party_id: int):
        self.network = network
        self.party_id = party_id
        self._closed = False

    def send(self, recipient: int, data: bytes) -> bool:
        if not self._closed:
            self.network.post(self.party_id, recipient, data)
        return not self._closed

    def poll(self) -> list[tuple[int, bytes]]:
        return [] if self._closed else self.network.collect(self.party_id)

    def wait(self, timeout_s: float) -> None:
        """Nothing to wait for in one process: the simulation advances its clock instead."""

    def close(self) -> None:
        self._closed = True
