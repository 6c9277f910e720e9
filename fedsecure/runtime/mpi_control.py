"""The MPI runner's control channel: typed messages for the wind-down of a round.

Three messages travel on the runner's control tag, msgspec Structs like the protocol's own
(:mod:`fedsecure.messages`), encoded with msgpack; nothing is pickled and nothing is a free
dict:

* :class:`RoundOver` -- rank 0 -> every client: the round has ended (a client still waiting
  for a protocol message stops);
* :class:`RankStats` -- client -> rank 0: what the rank spent (for the report only: nothing in
  it changes the aggregate);
* :class:`Final` -- rank 0 -> each client that reported: leave now, finalizing MPI if
  ``clean`` (every rank reported).

:func:`decode_control` is the only place control bytes become messages.  It checks the size
before decoding (at most :data:`MAX_CONTROL_BYTES`), the type and every field's range, and the
session; anything else raises :class:`~fedsecure.errors.MalformedMessage` naming the sender.
The runner turns that into the sender's dropout (rank 0 reports the rank as ``bad control
message`` and treats it as missing), never an abort of the job.  What a hostile rank gains by
lying in :class:`RankStats`: a wrong line in the per-rank table and wrong cost totals in the
report; the aggregate, the survivors and the check do not depend on it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from fedsecure.errors import MalformedMessage
from fedsecure.messages import SESSION_ID_BYTES

MAX_CONTROL_BYTES = 64 * 1024
"""Largest control message accepted; checked before decoding."""

MAX_TABLE_ENTRIES = 64
"""At most this many phases or message tags in one rank's statistics."""

Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**62)]
Name = Annotated[str, msgspec.Meta(max_length=64)]
Session = Annotated[bytes, msgspec.Meta(min_length=SESSION_ID_BYTES, max_length=SESSION_ID_BYTES)]
Rank = Annotated[int, msgspec.Meta(ge=0, le=2**31)]


class ControlMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag=True):
    """Base of the control messages; the tag is the class name."""

    session: Session


class RoundOver(ControlMessage, frozen=True):
    """Rank 0 -> client: the round has ended with ``outcome``."""

    outcome: Annotated[str, msgspec.Meta(pattern="^(finished|aborted)$")]


class RankStats(ControlMessage, frozen=True):
    """Client -> rank 0: one rank's statistics of the round (see ``mpi_runner._rank_stats``)."""

    rank: Rank
    role: Annotated[str, msgspec.Meta(pattern="^(server|client)$")]
    status: Name
    fault: Annotated[str, msgspec.Meta(max_length=256)] | None
    started_at: Seconds
    """The rank's clock (``time.monotonic``) when its party started: comparable between ranks
    on one host only (the benchmark's round span)."""
    round_s: Seconds
    compute_s: Seconds
    cpu_s: Seconds
    bytes_sent: Count
    bytes_received: Count
    seconds_by_phase: Annotated[dict[Name, Seconds], msgspec.Meta(max_length=MAX_TABLE_ENTRIES)]
    cpu_seconds_by_phase: Annotated[dict[Name, Seconds],
                                    msgspec.Meta(max_length=MAX_TABLE_ENTRIES)]
    bytes_sent_by_message: Annotated[dict[Name, Count],
                                     msgspec.Meta(max_length=MAX_TABLE_ENTRIES)]


class Final(ControlMessage, frozen=True):
    """Rank 0 -> client that reported: leave now; finalize MPI only if ``clean``."""

    clean: bool


Control = RoundOver | RankStats | Final
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Control)


def encode_control(message: ControlMessage) -> bytes:
    return _ENCODER.encode(message)


def decode_control(source: int, raw: bytes, session: bytes) -> ControlMessage:
    """The control message ``raw`` from rank ``source``, checked; else MalformedMessage."""
    if len(raw) > MAX_CONTROL_BYTES:
        raise MalformedMessage(f"control message of {len(raw)} bytes (at most "
                               f"{MAX_CONTROL_BYTES})", source)
    try:
        message = _DECODER.decode(raw)
    except (msgspec.DecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise MalformedMessage(f"undecodable control message: {str(exc)[:120]}", source) from None
    if message.session != session:
        raise MalformedMessage("control message of another session", source)
    if isinstance(message, RankStats) and message.rank != source:
        raise MalformedMessage(f"statistics claim rank {message.rank}", source)
    return message


def stats_as_dict(stats: RankStats) -> dict:
    """The statistics as the JSON report lists them (without the session)."""
    fields = msgspec.structs.asdict(stats)
    del fields["session"]
    return fields
