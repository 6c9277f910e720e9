"""MPITransport: in-process checks on a one-rank communicator, then real ranks under mpirun."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.mpi

WORKER = str(Path(__file__).with_name("mpi_transport_worker.py"))


@pytest.fixture(scope="module")
def MPI():
    mpi4py = pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install "
                                 "'fedsecure[mpi]')")
    from mpi4py import MPI

    del mpi4py
    return MPI


@pytest.fixture
def solo(MPI):
    """A transport on a private one-rank communicator (party 0 talking to itself)."""
    from fedsecure.transport.mpi import MPITransport

    comm = MPI.COMM_SELF.Dup()
    transport = MPITransport(comm, close_grace_s=0.2)
    yield transport
    transport.close()
    comm.Free()


def test_send_to_self_arrives_intact_and_in_order(solo):
    messages = [b"", b"x", bytes(range(256)) * 500, bytearray(b"mutable")]
    for m in messages:
        solo.send(0, m)
    got = []
    for _ in range(200):
        got += solo.poll()
        if len(got) == len(messages):
            break
        solo.wait(0.01)
    assert got == [(0, bytes(m)) for m in messages]
    assert all(type(data) is bytes for _, data in got)
    assert solo.poll() == []


def test_send_copies_mutable_buffers(solo):
    buf = bytearray(b"before")
    solo.send(0, buf)
    buf[:] = b"after!"
    solo.wait(1.0)
    assert solo.poll() == [(0, b"before")]


@pytest.mark.parametrize("recipient", [-1, 1, 7, "0", True])
def test_unknown_recipient_is_refused(solo, recipient):
    from fedsecure.errors import LocalProtocolError

    with pytest.raises(LocalProtocolError, match="recipient"):
        solo.send(recipient, b"x")


def test_bad_construction_is_refused(MPI):
    from fedsecure.errors import ConfigurationError
    from fedsecure.transport.mpi import MPITransport

    with pytest.raises(ConfigurationError, match="comm"):
        MPITransport("not a communicator")
    with pytest.raises(ConfigurationError, match="tag"):
        MPITransport(MPI.COMM_SELF, tag=-3)
    with pytest.raises(ConfigurationError, match="sleep"):
        MPITransport(MPI.COMM_SELF, min_sleep_s=0.5, max_sleep_s=0.1)
    with pytest.raises(ConfigurationError, match="max_message_bytes"):
        MPITransport(MPI.COMM_SELF, max_message_bytes=-1)


def test_wait_sleeps_instead_of_spinning(solo):
    wall, cpu = time.monotonic(), time.process_time()
    solo.wait(0.5)
    assert time.monotonic() - wall >= 0.49
    assert time.process_time() - cpu < 0.1  # a spinning loop would burn ~0.5 s of CPU


def test_wait_returns_early_when_something_arrived(solo):
    solo.send(0, b"here")
    began = time.monotonic()
    solo.wait(5.0)
    assert time.monotonic() - began < 1.0
    assert solo.poll() == [(0, b"here")]


def test_an_oversized_message_is_refused_without_a_buffer_of_its_size(MPI):
    from fedsecure.transport.mpi import MPITransport

    comm = MPI.COMM_SELF.Dup()
    capped = MPITransport(comm, max_message_bytes=1000, close_grace_s=0.2)
    capped.send(0, bytes(5_000_000))
    capped.send(0, b"small enough")
    got = []
    for _ in range(200):
        got += capped.poll()
        if got:
            break
        capped.wait(0.01)
    assert got == [(0, b"small enough")]  # the big one is gone, the next one still arrives
    assert capped.refused == [(0, 5_000_000)]
    assert capped.lost_receives == 1
    capped.close()
    comm.Free()


def test_channels_on_different_tags_do_not_mix(MPI):
    from fedsecure.transport.mpi import MPITransport

    comm = MPI.COMM_SELF.Dup()
    data, control = MPITransport(comm, tag=1), MPITransport(comm, tag=2)
    data.send(0, b"data")
    control.send(0, b"control")
    time.sleep(0.05)
    assert control.poll() == [(0, b"control")]
    assert data.poll() == [(0, b"data")]
    data.close()
    control.close()
    comm.Free()


def test_closed_transport_drops_sends_and_receives_nothing(solo):
    solo.close()
    solo.send(0, b"ignored")
    assert solo.poll() == []
    assert solo.pending_sends == 0
    solo.close()  # idempotent


# --------------------------------------------------------------------------- real ranks


def run_worker(launcher, mode: str, n: int, tmp_path, keep_going=False) -> dict[int, dict]:
    done = launcher.run(n, [WORKER, mode, str(tmp_path)], timeout_s=120, keep_going=keep_going)
    assert done.returncode == 0, done.stderr
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in tmp_path.glob("rank*.json")}


def test_every_size_arrives_intact_in_order_between_ranks(launcher, tmp_path):
    ranks = run_worker(launcher, "exchange", 3, tmp_path)
    assert sorted(ranks) == [0, 1, 2]
    for r in ranks.values():
        assert r["received"] == 2 * 7
        assert r["intact_in_order"] is True
        assert r["pending_after"] == 0
        assert r["types"] == ["bytes"]


def test_idle_wait_sleeps_and_wakes_on_arrival(launcher, tmp_path):
    r = run_worker(launcher, "idle", 2, tmp_path)[0]
    assert 0.95 <= r["idle_wall_s"] < 3.0
    assert r["idle_cpu_s"] < 0.25
    assert r["empty_poll"] == 0
    assert r["woke_after_s"] < 10  # woke for the message, not at the 30 s timeout
    assert r["then_polled"] == ["late"]


def test_close_does_not_hang_on_a_dead_recipient(launcher, tmp_path):
    ranks = run_worker(launcher, "dead-peer", 3, tmp_path, keep_going=True)
    assert 2 not in ranks
    sender = ranks[1]
    assert sender["pending_before_close"] >= 1  # the 2 MB send to the dead rank never completes
    assert sender["close_s"] < 3.0  # grace 0.5 s, then cancelled
    assert sender["pending_after_close"] == 0
    assert sender["poll_after_close"] == 0
    assert ranks[0]["got"] == [[1, "to the living"]]


def test_polling_never_blocks_on_a_sender_that_died_mid_message(launcher, tmp_path):
    ranks = run_worker(launcher, "dead-sender", 2, tmp_path, keep_going=True)
    r = ranks[0]
    assert r["slowest_poll_s"] < 1.0
    assert r["close_s"] < 3.0
    # whatever MPI managed before the sender died: the whole message, or nothing
    assert r["delivered_sizes"] in ([], [4_000_000])
    assert r["lost_receives"] + len(r["delivered_sizes"]) <= 1


def test_round_over_from_rank_0_ends_a_waiting_clients_loop(MPI, capsys):
    """The runner's client endpoint: alive until rank 0 says the round is over; control bytes
    that do not decode, or belong to another session, are ignored (never a crash)."""
    from fedsecure.runtime.mpi_control import RoundOver, encode_control
    from fedsecure.runtime.mpi_runner import CONTROL_TAG, _UntilRoundOver
    from fedsecure.transport.mpi import MPITransport

    session = bytes(range(16))
    comm = MPI.COMM_SELF.Dup()
    data, control = MPITransport(comm), MPITransport(comm, tag=CONTROL_TAG)
    endpoint = _UntilRoundOver(data, control, session)
    assert endpoint.alive is True
    data.send(0, b"protocol bytes")  # traffic on the data channel does not end the round
    time.sleep(0.05)
    assert endpoint.alive is True
    assert endpoint.poll() == [(0, b"protocol bytes")]
    control.send(0, b"\xc1 garbage")
    control.send(0, encode_control(RoundOver(session=bytes(16), outcome="finished")))
    time.sleep(0.05)
    assert endpoint.alive is True
    assert capsys.readouterr().err.count("ignored a control message from rank 0") == 2
    control.send(0, encode_control(RoundOver(session=session, outcome="finished")))
    time.sleep(0.05)
    assert endpoint.alive is False
    data.close()
    control.close()
    comm.Free()
