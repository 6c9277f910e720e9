"""Drive one round's parties by hand, phase by phase, with no transport: every message is
round-tripped through the codec, so tests can inspect, drop or tamper with messages between
phases.  Shared by the protocol test suites (SecAgg, CKKS, ...)."""

from __future__ import annotations

from fedsecure.messages import decode, encode


def events_of(party, kind=None) -> list:
    """Drain ``party``'s events (only those of type ``kind`` are returned, if given)."""
    out = []
    while (event := party.next_event()) is not None:
        if kind is None or isinstance(event, kind):
            out.append(event)
    return out


class Harness:
    def __init__(self, aggregator, inputs):
        self.aggregator = aggregator
        self.server = aggregator.server()
        self.clients = {}
        for client_id, (vector, weight) in inputs.items():
            client = aggregator.client(client_id)
            client.set_input(vector, weight)
            self.clients[client_id] = client
        self.server.start()
        self.to_server: list = []
        for client in self.clients.values():
            client.start()
        self.collect()

    def collect(self) -> list:
        """Gather what clients want to send."""
        for client in self.clients.values():
            self.to_server.extend(decode(encode(e)) for e in client.messages_to_send())
        return self.to_server

    def deliver_to_server(self, skip=()) -> None:
        pending, self.to_server = self.to_server, []
        for envelope in pending:
            if envelope.sender not in skip:
                self.server.receive(envelope)

    def close_phase(self) -> dict[int, list]:
        """The server closes its phase; returns its messages by recipient (undelivered)."""
        self.server.proceed_to_next_round()
        out: dict[int, list] = {}
        for envelope in self.server.messages_to_send():
            out.setdefault(envelope.recipient, []).append(decode(encode(envelope)))
        return out

    def deliver_to_clients(self, messages: dict[int, list], skip=()) -> None:
        for recipient, envelopes in messages.items():
            if recipient in self.clients and recipient not in skip:
                for envelope in envelopes:
                    self.clients[recipient].receive(envelope)
        self.collect()

    def run_phase(self, skip=()) -> dict[int, list]:
        """Deliver clients' messages, close the phase, deliver the server's answer."""
        self.deliver_to_server(skip)
        out = self.close_phase()
        self.deliver_to_clients(out, skip)
        return out

    def run_until_server_phase(self, phase: str) -> None:
        while self.server.phase != phase:
            self.run_phase()

    def run_to_end(self):
        while not self.server.done:
            self.run_phase()
        return self.server

    def events(self, party, kind=None) -> list:
        return events_of(party, kind)
