"""One round as MPI ranks vs the same round in one process: the MPI runtime's overhead.

Run as benchmarks:  pytest benchmarks/bench_mpi.py --benchmark-only
Record a JSON file: python benchmarks/bench_mpi.py --out benchmarks/results/mpi_overhead.json
Before vs after:    python benchmarks/bench_mpi.py --out before_after.json --baseline OLD_TREE
                    (OLD_TREE: another checkout, e.g. ``git worktree add /tmp/old HEAD~3``;
                    its MPI round is measured in the same run, each case interleaved)

For each (protocol, n, d) the MPI side is ``mpirun -n n+1 python -m fedsecure mpi-round`` and
its time is the *round span*: from the first rank's party start (every rank leaves the
start-up agreement's start line at about the same time) to rank 0's result -- no process
start, imports, kernel warm-up or start-up agreement, but every party's work, a client that
started before rank 0 included (``rank0_round_s_all`` keeps rank 0's own driver time,
never longer) -- median over repeats; the in-process side is
``simulate_round`` with the same synthetic inputs after one warm-up round, median over
repeats.  ``overhead_ratio`` = MPI round seconds / in-process round seconds.  The two do
different work with the same protocol code: in one process every party runs in turn on one
core with no transport; under MPI the parties run in parallel (on as many cores as there
are) but pay for message passing, polling latency and process scheduling — on a machine
with fewer cores than ranks the ratio is mostly about oversubscription.  No faults: a
deadline would dominate both.

Where a small MPI round's fixed cost went (traced per rank, plaintext d = 1e4, 8 ranks on 2
cores): not into message passing itself but into *noticing* -- ranks slept up to 5 ms between
probes, so each hop (and each relay step of the start-up collectives, which a sleeping rank
only advances when it wakes) waited a few ms; the clients learnt the session up to ~20 ms
after rank 0.  The transport now sleeps a fraction of the time it has been idle
(``fedsecure.transport.mpi.idle_sleep_s``: first 5 % from 0.2 ms, which cut that round from
~25 ms to ~7 ms without busy polling; now 2 % from 0.05 ms, see docs/mpi.md).

Two unfair costs the MPI side used to carry (SecAgg d = 1e5, traced per rank): the session
id came by ``Ibcast``, which completes at its root at once, so rank 0's clock started 5-30
ms before the last client had the session (the agreement's tail, counted as round time);
it now comes by an ``Iallreduce``, which no rank leaves before all have joined it.  And the
in-process side discards a full-size warm-up round while the ranks had only warmed up at 64
values, so each client rank took ~430 first-touch page faults (~4 us each here) inside the
round; the ranks now also warm up at the round's vector length.  What is left is mostly
the machine: with 8 ranks on 2 cores every party's own work costs ~1.5-2x the CPU it costs
alone on one core, and idle ranks' wake-ups (~30 us of CPU each on this VM) add ~10 ms of
CPU per round -- see docs/mpi.md, "Overhead".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fedsecure.runtime.mpi_config import MPIRoundConfig, synthetic_update
from fedsecure.runtime.simulation import simulate_round

REPO = Path(__file__).absolute().parents[1]
CASES = [("plaintext", 7, 10**4), ("secagg", 7, 10**4), ("plaintext", 7, 10**5),
         ("secagg", 7, 10**5)]


def _case_id(case) -> str:
    protocol, n, d = case
    return f"{protocol}-n{n}-d{d:.0e}".replace("+0", "")


def mpi_round_seconds(protocol: str, n: int, d: int, repeats: int, repo: Path = REPO) -> dict:
    """Launch the round ``repeats`` times with the fedsecure tree ``repo``; rank 0's round
    seconds and the launch wall time."""
    launcher = shutil.which("mpirun") or shutil.which("mpiexec")
    if launcher is None:
        raise RuntimeError("no mpirun/mpiexec on PATH (pip install 'fedsecure[mpi]')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(repo), os.environ.get("PYTHONPATH")) if p))
    rounds, launches, reports = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "round.json"
        for _ in range(repeats):
            began = time.perf_counter()
            done = subprocess.run(
                [launcher, "-n", str(n + 1), sys.executable, "-m", "fedsecure", "mpi-round",
                 "--protocol", protocol, "--dim", str(d), "--deadline", "120",
                 "--out", str(out)],
                cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False)
            launches.append(time.perf_counter() - began)
            if done.returncode != 0:
                raise RuntimeError(f"mpi-round failed ({done.returncode}):\n{done.stderr}")
            report = json.loads(out.read_text())
            rounds.append(round_span_s(report))
            reports.append(report)
    last = reports[-1]
    return {
        "round_s": statistics.median(rounds), "round_s_all": rounds,
        "rank0_round_s_all": [r["round_s"] for r in reports],
        "launch_wall_s": statistics.median(launches),
        "server_cpu_s": last["ranks"][0]["cpu_s"],
        "client_cpu_s_mean": statistics.mean(r["cpu_s"] for r in last["ranks"][1:]),
        "bytes_total": sum(r["bytes_sent"] for r in last["ranks"]),
        "check_ok": last["check"]["ok"],
    }


def round_span_s(report: dict) -> float:
    """From the first rank's start to rank 0's result (every rank on this host, so their
    monotonic clocks agree): at least rank 0's own round time, and it also counts a client
    that left the start line before rank 0."""
    server = report["ranks"][0]
    if "started_at" not in server:  # a --baseline tree from before ranks reported it
        return report["round_s"]
    first = min(r["started_at"] for r in report["ranks"] if "started_at" in r)
    return server["started_at"] + server["round_s"] - first


def simulated_round_seconds(protocol: str, n: int, d: int, repeats: int) -> dict:
    config = MPIRoundConfig(protocol=protocol, dim=d)
    inputs = {c: synthetic_update(config, c) for c in range(1, n + 1)}
    times, report = [], None
    for i in range(repeats + 1):  # the first round warms up kernels and lazy imports
        aggregator = config.aggregator(n, os.urandom(16))
        began = time.perf_counter()
        report = simulate_round(aggregator, inputs)
        if i:
            times.append(time.perf_counter() - began)
    if report.error is not None:
        raise RuntimeError(f"simulated round failed: {report.error}")
    return {"round_s": statistics.median(times), "round_s_all": times,
            "cpu_s_all_parties": sum(s.total_cpu_seconds for s in report.stats.values()),
            "bytes_total": report.bytes_total}


def measure(protocol: str, n: int, d: int, repeats: int = 3, baseline: Path | None = None
            ) -> dict:
    mpi = mpi_round_seconds(protocol, n, d, repeats)
    sim = simulated_round_seconds(protocol, n, d, repeats)
    record = {"protocol": protocol, "n_clients": n, "dim": d, "ranks": n + 1,
              "mpi": mpi, "in_process": sim, "overhead_ratio": mpi["round_s"] / sim["round_s"],
              "load_average": os.getloadavg()[0]}
    if baseline is not None:
        before = mpi_round_seconds(protocol, n, d, repeats, repo=baseline)
        record.update(baseline_tree=str(baseline), baseline_mpi=before,
                      baseline_overhead_ratio=before["round_s"] / sim["round_s"])
    return record


@pytest.mark.mpi
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_mpi_round_vs_in_process(benchmark, case):
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'fedsecure[mpi]')")
    if shutil.which("mpirun") is None and shutil.which("mpiexec") is None:
        pytest.skip("no mpirun/mpiexec launcher on PATH")
    records = []
    benchmark.group = "mpi round vs in-process"
    benchmark.pedantic(lambda: records.append(measure(*case, repeats=1)), rounds=1,
                       iterations=1)
    record = records[-1]
    assert record["mpi"]["check_ok"] is True
    assert record["mpi"]["bytes_total"] == record["in_process"]["bytes_total"]
    benchmark.extra_info.update({
        "mpi_round_s": record["mpi"]["round_s"],
        "in_process_round_s": record["in_process"]["round_s"],
        "overhead_ratio": record["overhead_ratio"],
        "mpi_launch_wall_s": record["mpi"]["launch_wall_s"],
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also measure the MPI round of this fedsecure checkout (before)")
    args = parser.parse_args(argv)
    results = []
    for case in CASES:
        record = measure(*case, repeats=args.repeats, baseline=args.baseline)
        results.append(record)
        before = ("" if args.baseline is None else
                  f"   baseline mpi {record['baseline_mpi']['round_s']:.3f} s ratio"
                  f" {record['baseline_overhead_ratio']:.2f}")
        print(f"{_case_id(case):<24} mpi {record['mpi']['round_s']:.3f} s   in-process "
              f"{record['in_process']['round_s']:.3f} s   ratio {record['overhead_ratio']:.2f}"
              f"{before}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "benchmark": "mpi round vs in-process simulate_round",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "load_average_at_end": os.getloadavg(),
        "results": results,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
