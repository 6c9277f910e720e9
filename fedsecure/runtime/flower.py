"""fedsecure inside Flower (Message API, flwr >= 1.42): a ClientApp mod and a server-side grid.

Flower is a transport here: envelopes travel as bytes (a list in the ``fedsecure``
ConfigRecord of Flower messages); the same parties and the same :class:`PartyDriver` checks
(size cap before decoding, sender == Flower source) run as under the memory and MPI transports.

* Server: ``FedSecureGrid(grid, protocol="secagg", ...)`` wraps the ServerApp's Grid in the place
  of ``SecAggPlusWorkflow``; a strategy's TRAIN messages become one fedsecure round over their
  nodes (client ids 1..n in node-id order), and the strategy receives one reply holding the
  securely aggregated mean with weight = total weight, so FedAvg & co. return that mean.  Each
  exchange is one ``send_and_receive`` and closes one protocol phase: the first (training and
  the first protocol message) waits ``train_timeout_s`` (default: the strategy's timeout), the
  others ``timeout_s``; a node that errors or does not reply in time is dropped
  (``proceed_to_next_round``).
* Two message shapes: the Message API's (``ArrayRecord`` + ``num-examples`` in a MetricRecord,
  e.g. ``flwr.serverapp.strategy.FedAvg``) and the legacy ``FitIns``/``FitRes`` records of a
  ``NumPyClient`` under ``DefaultWorkflow`` (the ClientApps ``secaggplus_mod`` serves); the reply
  to the strategy has the shape of its request.
* Session agreement: the server draws a fresh 16-byte session per round and sends it, with the
  protocol, spec, options and the node's client id, in the first message (``FlowerSetup``).
* Client: ``fedsecure_mod`` trains on the first message (``call_next``), flattens the reply's
  arrays into the input and its number of examples into the weight, and never sends them;
  between calls the party lives as ``snapshot()`` in ``context.state`` (it never leaves the node).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from fedsecure.errors import BackendUnavailable, MalformedMessage
from fedsecure.messages import SERVER_ID
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.rng import DEFAULT_RNG
from fedsecure.runtime.driver import Deadlines, PartyDriver
from fedsecure.transport.base import Transport

try:
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
    from flwr.compat.common.recorddict_compat import fitres_to_recorddict
    from flwr.serverapp import Grid
except ImportError:  # pragma: no cover - exercised only without the extra
    raise BackendUnavailable("flwr", "flower") from None

RECORD = "fedsecure"
STATE_RECORD = "fedsecure.state"
TRAIN = "train"
LEGACY_FITINS, LEGACY_FITRES = "fitins.parameters", "fitres.parameters"  # DefaultWorkflow's records

Option = int | float | str | bool | None


class FlowerSetup(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """What the server tells each node in a round's first message."""

    protocol: str
    client_id: int
    n_clients: int
    vector_length: int
    max_weight: int
    clip: float
    min_clients: int
    session: bytes
    round: int
    options: dict[str, Option]

    def aggregator(self):
        spec = AggregationSpec(self.n_clients, self.vector_length, max_weight=self.max_weight,
                               clip=self.clip, min_clients=self.min_clients,
                               session=self.session, round=self.round)
        return make_aggregator(self.protocol, spec, **self.options)


_SETUP_DECODER = msgspec.msgpack.Decoder(FlowerSetup)


def setup_of(message) -> FlowerSetup | None:
    """The fedsecure setup a Flower message carries (None if it carries none)."""
    record = message.content.config_records.get(RECORD)
    if record is None or "setup" not in record:
        return None
    try:
        return _SETUP_DECODER.decode(record["setup"])
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"fedsecure setup: {exc}", SERVER_ID) from None


def _envelopes(content) -> list[bytes]:
    datas = content.config_records[RECORD].get("envelopes", [])
    if not isinstance(datas, list) or not all(isinstance(d, bytes) for d in datas):
        raise MalformedMessage("fedsecure envelopes must be a list of bytes")
    return datas


class MailboxTransport(Transport):
    """Bytes in and out of one Flower exchange: filled and drained by the caller."""

    def __init__(self, party_id: int):
        self.party_id = party_id
        self.inbox: list[tuple[int, bytes]] = []
        self.outbox: dict[int, list[bytes]] = {}

    def send(self, recipient: int, data: bytes) -> bool:
        self.outbox.setdefault(recipient, []).append(data)
        return True

    def poll(self) -> list[tuple[int, bytes]]:
        out, self.inbox = self.inbox, []
        return out

    def wait(self, timeout_s: float) -> None:
        """Flower delivers whole exchanges: nothing to wait for."""

    def take(self) -> dict[int, list[bytes]]:
        out, self.outbox = self.outbox, {}
        return out


# --------------------------------------------------------------------------- client


def _update_of(content) -> tuple[np.ndarray, int]:
    """A training reply's arrays, flattened, and its number of examples (either shape)."""
    if LEGACY_FITRES in content.array_records:  # a NumPyClient's FitRes
        arrays = content.array_records[LEGACY_FITRES]
        weight = content.metric_records["fitres.num_examples"]["num_examples"]
    else:
        arrays = next(iter(content.array_records.values()))
        weight = next(iter(content.metric_records.values()))["num-examples"]
    return np.concatenate([a.numpy().ravel() for a in arrays.values()]), int(weight)


def fedsecure_mod(msg, ctxt, call_next):
    """ClientApp mod: run this node's fedsecure party on messages that carry a fedsecure record."""
    if msg.metadata.message_type != TRAIN or RECORD not in msg.content.config_records:
        return call_next(msg, ctxt)
    setup = setup_of(msg)
    if setup is not None:
        reply = call_next(msg, ctxt)
        if reply.has_error():
            return reply
        vector, weight = _update_of(reply.content)
        party = setup.aggregator().client(setup.client_id)
        party.set_input(vector, weight)
        started = False
    else:
        saved = ctxt.state.config_records.get(STATE_RECORD)
        if saved is None:  # no party here (it failed before it had one; e.g. told to Abort)
            return Message(RecordDict({RECORD: ConfigRecord({"envelopes": []})}), reply_to=msg)
        setup = _SETUP_DECODER.decode(saved["setup"])
        party = setup.aggregator().client(setup.client_id)
        party.restore(saved["party"])
        started = True
    transport = MailboxTransport(setup.client_id)
    transport.inbox = [(SERVER_ID, data) for data in _envelopes(msg.content)]
    driver = PartyDriver(party, transport, clock=lambda: 0.0,
                         started=started)
    driver.step()
    if party.done:
        ctxt.state.config_records.pop(STATE_RECORD, None)
    else:
        ctxt.state.config_records[STATE_RECORD] = ConfigRecord(
            {"setup": msgspec.msgpack.encode(setup), "party": party.snapshot()})
    out = transport.take().get(SERVER_ID, [])
    return Message(RecordDict({RECORD: ConfigRecord({"envelopes": out})}), reply_to=msg)


# --------------------------------------------------------------------------- server


class _ExchangeClock:
    """The driver's clock: one unit per Flower exchange, and every phase's deadline is one unit
    (``send_and_receive`` returns when every node answered or its timeout passed)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _server_round(message) -> int:
    config = message.content.config_records.get("config", {})
    if "server-round" in config:  # the Message API strategies
        return int(config["server-round"])
    group = message.metadata.group_id  # DefaultWorkflow: str(current round)
    return int(group) if group.isdigit() else 0


def _aggregate_content(request_key: str, arrays: dict[str, np.ndarray], weight: float) -> RecordDict:
    """What the strategy reads from the one reply: the request's shape, mean and total weight."""
    if request_key == LEGACY_FITINS:
        parameters = ndarrays_to_parameters(list(arrays.values()))
        return fitres_to_recorddict(FitRes(Status(Code.OK, ""), parameters, int(round(weight)), {}),
                                    keep_input=True)
    return RecordDict({request_key: ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                       "metrics": MetricRecord({"num-examples": weight})})


class GridWrapper(Grid):
    """A Grid that hands every call to ``inner``; subclasses override what they change."""

    def __init__(self, grid):
        self.inner = grid

    def set_run(self, run):
        self.inner.set_run(run)

    @property
    def run(self):
        return self.inner.run

    def create_message(self, *args, **kwargs):
        return self.inner.create_message(*args, **kwargs)

    def get_node_ids(self):
        return self.inner.get_node_ids()

    def get_nodes(self):
        return self.inner.get_nodes()

    def push_messages(self, messages):
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids):
        return self.inner.pull_messages(message_ids)

    def send_and_receive(self, messages, *, timeout=None):
        return self.inner.send_and_receive(messages, timeout=timeout)


class FedSecureGrid(GridWrapper):
    """A Grid whose TRAIN rounds are aggregated by fedsecure (see the module docstring)."""

    def __init__(self, grid, protocol: str = "secagg", *, clip: float = 1.0, max_weight: int = 1000,
                 min_fraction: float = 0.5, timeout_s: float | None = None,
                 train_timeout_s: float | None = None, options: dict[str, Option] | None = None,
                 rng=DEFAULT_RNG, on_event=None):
        super().__init__(grid)
        self.protocol, self.clip, self.max_weight = protocol, clip, max_weight
        self.min_fraction, self.timeout_s, self.train_timeout_s = min_fraction, timeout_s, train_timeout_s
        self.options, self.rng, self.on_event = dict(options or {}), rng, on_event
        self.results: list = []  # (server round, AggregateResult or ProtocolAborted, node ids)

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        if not messages or any(m.metadata.message_type != TRAIN for m in messages):
            return self.inner.send_and_receive(messages, timeout=timeout)
        phase_s = self.timeout_s or timeout or 3600.0
        return self._secure_round(messages, self.train_timeout_s or timeout or phase_s, phase_s)

    def _secure_round(self, messages, train_timeout_s: float, phase_timeout_s: float):
        messages = sorted(messages, key=lambda m: m.metadata.dst_node_id)
        nodes = [m.metadata.dst_node_id for m in messages]
        ids = {node: i for i, node in enumerate(nodes, start=1)}
        array_key, model = next(iter(messages[0].content.array_records.items()))
        layout = [(k, a.numpy().shape, a.numpy().dtype) for k, a in model.items()]
        d = sum(math.prod(shape) for _, shape, _ in layout)
        n = len(nodes)
        server_round = _server_round(messages[0])
        setup = FlowerSetup(self.protocol, 0, n, d, self.max_weight, self.clip,
                            max(n // 2 + 1, math.ceil(self.min_fraction * n)),
                            self.rng.bytes(16), server_round, self.options)
        server = setup.aggregator().server()
        transport, clock = MailboxTransport(SERVER_ID), _ExchangeClock()
        driver = PartyDriver(server, transport, clock=clock,
                             deadlines=Deadlines(default_s=1.0), on_event=self.on_event)
        driver.step()
        first = {m.metadata.dst_node_id: m for m in messages}
        timeout_s, last_reply = train_timeout_s, {}
        while not server.done:
            outgoing = transport.take()
            batch = []
            for node in (nodes if first else [nd for nd in nodes if ids[nd] in outgoing]):
                record = {"envelopes": outgoing.get(ids[node], [])}
                if first:
                    record["setup"] = msgspec.msgpack.encode(
                        msgspec.structs.replace(setup, client_id=ids[node]))
                    content = RecordDict({**first[node].content, RECORD: ConfigRecord(record)})
                else:
                    content = RecordDict({RECORD: ConfigRecord(record)})
                batch.append(Message(content, dst_node_id=node, message_type=TRAIN,
                                     group_id=str(server_round)))
            first = {}
            replies = self.inner.send_and_receive(batch, timeout=timeout_s) if batch else []
            clock.now += 1.0  # the phase deadline has passed
            timeout_s = phase_timeout_s
            for reply in replies:
                node = reply.metadata.src_node_id
                if node in ids and not reply.has_error() and RECORD in reply.content.config_records:
                    last_reply[ids[node]] = reply
                    transport.inbox.extend((ids[node], d) for d in _envelopes(reply.content))
            driver.step()
        if server.aborted is not None:
            self.results.append((server_round, server.aborted, nodes))
            return []
        result = server.result()
        self.results.append((server_round, result, nodes))
        mean, arrays, start = result.mean, {}, 0
        for key, shape, dtype in layout:
            size = math.prod(shape)
            arrays[key] = mean[start:start + size].reshape(shape).astype(dtype)
            start += size
        reply = last_reply[result.survivors[0]]
        reply.content = _aggregate_content(array_key, arrays, result.total_weight)
        return [reply]
