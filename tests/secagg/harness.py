"""Drive SecAgg parties by hand, phase by phase, with no transport: for tests that need to
inspect or tamper with individual messages between phases."""

from __future__ import annotations

from fedsecure.messages import decode, encode


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
        self.to_server = []
        for client in self.clients.values():
            client.start()
        self.collect()

    def collect(self):
        """Gather what clients want to send (round-tripped through the codec)."""
        for client in self.clients.values():
            self.to_server.extend(decode(encode(e)) for e in client.messages_to_send())
        return self.to_server

    def deliver_to_server(self, skip=()):
        pending, self.to_server = self.to_server, []
        for envelope in pending:
            if envelope.sender not in skip:
                self.server.receive(envelope)

    def close_phase(self) -> dict:
        """Server closes its phase; returns its messages, by recipient (not yet delivered)."""
        self.server.proceed_to_next_round()
        out = {}
        for envelope in self.server.messages_to_send():
            out.setdefault(envelope.recipient, []).append(decode(encode(envelope)))
        return out

    def deliver_to_clients(self, messages: dict, skip=()):
        for recipient, envelopes in messages.items():
            if recipient in self.clients and recipient not in skip:
                for envelope in envelopes:
                    self.clients[recipient].receive(envelope)
        self.collect()

    def run_phase(self, skip=()):
        """Deliver clients' messages, close the phase, deliver the server's answer."""
        self.deliver_to_server(skip)
        out = self.close_phase()
        self.deliver_to_clients(out, skip)
        return out

    def events(self, party):
        out = []
        while (event := party.next_event()) is not None:
            out.append(event)
        return out
