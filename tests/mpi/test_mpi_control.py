"""The MPI runner's control channel codec: typed, bounded, and a bad message names its sender.

No MPI needed.  What a hostile rank may send on the control channel -- garbage, oversized,
another session's or another rank's statistics, out-of-range numbers -- must raise only
``MalformedMessage`` (which rank 0 turns into that rank's dropout), never anything untyped.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedsecure.errors import MalformedMessage
from fedsecure.runtime.mpi_control import (
    MAX_CONTROL_BYTES,
    Final,
    RankStats,
    RoundOver,
    decode_control,
    encode_control,
    stats_as_dict,
)

SESSION = bytes(range(16))


def stats(**changes) -> RankStats:
    fields = dict(session=SESSION, rank=3, role="client", status="finished", fault=None,
                  started_at=12.0, round_s=0.5, compute_s=0.1, cpu_s=0.1, bytes_sent=10,
                  bytes_received=20,
                  seconds_by_phase={"collect_keys": 0.1}, cpu_seconds_by_phase={"x": 0.1},
                  bytes_sent_by_message={"AdvertiseKeys": 10})
    return RankStats(**{**fields, **changes})


@pytest.mark.parametrize("message", [
    RoundOver(session=SESSION, outcome="finished"), Final(session=SESSION, clean=False), stats(),
])
def test_control_messages_round_trip(message):
    source = message.rank if isinstance(message, RankStats) else 0
    assert decode_control(source, encode_control(message), SESSION) == message


def test_the_report_lists_statistics_without_the_session():
    fields = stats_as_dict(stats())
    assert "session" not in fields and fields["rank"] == 3 and fields["bytes_sent"] == 10


def _raw(**fields) -> bytes:
    """A RankStats on the wire with some fields replaced (values a typed sender cannot make)."""
    record = {"type": "RankStats", **msgspec.to_builtins(stats()), **fields}
    record["session"] = SESSION
    return msgspec.msgpack.encode(record)


@pytest.mark.parametrize("raw, match", [
    (b"", "undecodable"),
    (b"\xc1", "undecodable"),
    (msgspec.msgpack.encode({"kind": "stats"}), "undecodable"),  # the old JSON-era shape
    (msgspec.msgpack.encode({"type": "RoundOver", "session": SESSION}), "undecodable"),
    (_raw(cpu_s=float("nan")), "undecodable"),
    (_raw(cpu_s=-1.0), "undecodable"),
    (_raw(bytes_sent=-5), "undecodable"),
    (_raw(status="x" * 1000), "undecodable"),
    (_raw(role="admin"), "undecodable"),
    (_raw(seconds_by_phase={f"p{i}": 0.0 for i in range(100)}), "undecodable"),
    (_raw(extra_field=1), "undecodable"),
    (encode_control(stats(rank=4)), "claim rank 4"),
    (encode_control(stats(session=bytes(16))), "another session"),
    (b"\x00" * (MAX_CONTROL_BYTES + 1), "at most"),
])
def test_bad_control_messages_raise_malformed_naming_the_sender(raw, match):
    with pytest.raises(MalformedMessage, match=match) as caught:
        decode_control(3, raw, SESSION)
    assert caught.value.sender == 3


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_malformed(raw):
    try:
        decode_control(2, raw, SESSION)
    except MalformedMessage as exc:
        assert exc.sender == 2
