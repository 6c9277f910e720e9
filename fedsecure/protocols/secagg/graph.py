"""Who shares secrets and masks with whom.

SecAgg is SecAgg+ on the complete graph: every protocol step is written against a client's
neighbour set, and full SecAgg is the case where every other client is a neighbour.  A
client's *share holders* are its neighbours and itself (it keeps one share of its own
secrets); any ``threshold`` of them reconstruct.  SecAgg+ plugs in a sparse (Harary-style)
graph with a per-neighbourhood threshold through the same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class NeighbourGraph(ABC):
    degree: int
    """The most neighbours any client has (shares per client: degree + 1, counting its own)."""

    @abstractmethod
    def neighbours(self, client: int) -> frozenset[int]:
        """Clients ``client`` masks with and gives shares to (never itself)."""

    def share_holders(self, client: int) -> frozenset[int]:
        return self.neighbours(client) | {client}


class CompleteGraph(NeighbourGraph):
    """Every client is every other client's neighbour (Bonawitz et al. SecAgg)."""

    def __init__(self, clients: range):
        self.clients = frozenset(clients)
        self.degree = len(self.clients) - 1

    def neighbours(self, client: int) -> frozenset[int]:
        return self.clients - {client}
