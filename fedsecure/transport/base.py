"""Transports move opaque byte strings between party ids; nothing else.

Party ids: the server is 0, clients are 1..n.  A transport never decodes, never retries a
protocol step and never reads a clock for protocol purposes: deadlines belong to the driver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Transport(ABC):
    """One party's endpoint."""

    party_id: int

    @abstractmethod
    def send(self, recipient: int, data: bytes) -> bool:
        """Queue ``data`` for ``recipient`` (never blocks on the recipient); False if this
        endpoint dropped it instead (closed, or silenced by a fault)."""

    @abstractmethod
    def poll(self) -> list[tuple[int, bytes]]:
        """Everything that has arrived, as (source party id, bytes); never blocks."""

    @abstractmethod
    def wait(self, timeout_s: float) -> None:
        """Block until something may have arrived, or ``timeout_s`` passed."""

    def close(self) -> None:
        """Release resources; further sends are dropped."""

    @property
    def alive(self) -> bool:
        """False once this endpoint's process is gone (a crash injected by a fault)."""
        return True

    def has_pending(self) -> bool:
        """True while sends are still held back (delayed by a fault, or in flight)."""
        return False

    def next_wakeup(self) -> float | None:
        """Clock time at which held-back traffic is due, if any."""
        return None
