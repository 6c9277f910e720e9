"""``fedsecure simulate``: one secure-aggregation round with every party in this process.

Synthetic inputs (seeded), a share of clients dropping out at random phases, then a report:
the round's outcome, the aggregate's error against the plain sum of the survivors, bytes
sent and time per phase (server and clients separately), with progress shown as it runs.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from fedsecure.config import require
from fedsecure.protocols.base import (
    AggregationSpec,
    ClientDropped,
    PhaseStarted,
    RoundAborted,
    RoundFinished,
    available_protocols,
    make_aggregator,
)
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round

CLIENT_MESSAGES = {
    "secagg": ("AdvertiseKeys", "EncryptedShares", "MaskedInput", "UnmaskShares"),
    "plaintext": ("PlainUpdate",),
    "ckks": ("CkksAdvertise", "CkksUpdate"),
}


def register(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="run one secure-aggregation round in-process",
                              description=__doc__)
    p.add_argument("--protocol", default="secagg", help="aggregation protocol (default secagg)")
    p.add_argument("--clients", type=int, default=50, help="number of clients (default 50)")
    p.add_argument("--dim", type=int, default=100_000, help="vector length (default 100000)")
    p.add_argument("--dropout", type=float, default=0.1,
                   help="fraction of clients that drop out, each at a random phase (default 0.1)")
    p.add_argument("--max-weight", type=int, default=100, help="largest client weight")
    p.add_argument("--clip", type=float, default=1.0, help="per-coordinate clipping bound")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and dropouts")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(run=run)


def run(args) -> int:
    require(args.protocol in available_protocols(), "--protocol", args.protocol,
            f"choose one of {available_protocols()}")
    require(0 <= args.dropout < 1, "--dropout", args.dropout, "must be in [0, 1)")
    spec = AggregationSpec(n_clients=args.clients, vector_length=args.dim,
                           max_weight=args.max_weight, clip=args.clip)
    aggregator = make_aggregator(args.protocol, spec)
    data = np.random.default_rng(args.seed)  # synthetic inputs only, never secrets
    inputs = {c: (data.uniform(-args.clip, args.clip, args.dim),
                  int(data.integers(1, args.max_weight + 1))) for c in spec.client_ids}
    n_drop = int(round(args.dropout * args.clients))
    dropouts = data.choice(list(spec.client_ids), size=n_drop, replace=False)
    tags = CLIENT_MESSAGES.get(args.protocol, ("",))
    faults = [Silent(int(c), tags[int(data.integers(len(tags)))]) for c in dropouts]

    progress = Progress(enabled=not args.quiet)
    began = time.perf_counter()
    report = simulate_round(aggregator, inputs, faults=faults, on_event=progress)
    wall = time.perf_counter() - began

    print(f"protocol {args.protocol}: {args.clients} clients x {args.dim} values, "
          f"{n_drop} dropouts ({', '.join(f'{f.party}@{f.before}' for f in faults) or 'none'})")
    if report.error is not None:
        print(f"round ABORTED: {report.error}")
        return 1
    result = report.result
    survivors = result.survivors
    plain = sum(inputs[c][1] * np.clip(inputs[c][0], -args.clip, args.clip) for c in survivors)
    weight = sum(inputs[c][1] for c in survivors)
    error = float(np.max(np.abs(result.mean - plain / weight)))
    print(f"round finished: {len(survivors)} survivors, dropped {list(result.dropped)}")
    print(f"total weight {result.total_weight:g} (plain {weight}); max |mean - plain mean| = "
          f"{error:.3g} (bound {aggregator.quantization_error:.3g})")
    _print_phase_table(report)
    print(f"bytes sent: {report.bytes_total / 1e6:.2f} MB in all, server "
          f"{report.server_stats.total_bytes_sent / 1e6:.2f} MB; wall time {wall:.2f} s")
    return 0 if error <= aggregator.quantization_error + 1e-12 else 1


def _print_phase_table(report) -> None:
    sent: dict[str, int] = {}
    for stats in report.stats.values():
        for tag, n in stats.bytes_sent.items():
            sent[tag] = sent.get(tag, 0) + n
    print(f"{'CPU seconds by phase':<34}{'server':>10}{'clients (sum)':>15}")
    server, clients = report.seconds_by_phase("server"), report.seconds_by_phase("clients")
    for phase in list(dict.fromkeys([*server, *clients])):
        print(f"  {phase:<32}{server.get(phase, 0.0):>10.3f}{clients.get(phase, 0.0):>15.3f}")
    print(f"{'MB sent by message':<34}")
    for tag, n in sent.items():
        print(f"  {tag:<32}{n / 1e6:>10.2f}")


class Progress:
    """Progress on stderr: a line per server phase; on a terminal, a live count of the clients
    that have answered in the current phase."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.began = time.perf_counter()
        self.phase = "starting"
        self.answered = 0
        self.dropped = 0

    def __call__(self, party_id: int, event) -> None:
        if not self.enabled:
            return
        if party_id != 0:
            if isinstance(event, (PhaseStarted, RoundFinished)):
                self.answered += 1
                if self.live:
                    print(f"\r  {self.phase}: {self.answered} clients answered", end="",
                          file=sys.stderr, flush=True)
            return
        if isinstance(event, ClientDropped):
            self.dropped += 1
        elif isinstance(event, (PhaseStarted, RoundFinished, RoundAborted)):
            label = getattr(event, "phase", type(event).__name__)
            end = "\n" if self.live else ""
            print(f"{end}[{time.perf_counter() - self.began:7.2f}s] {label}"
                  f" (clients answered in the last phase: {self.answered},"
                  f" dropped so far: {self.dropped})", file=sys.stderr, flush=True)
            self.phase, self.answered = label, 0
