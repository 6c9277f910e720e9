"""``fedsecure simulate``: one secure-aggregation round with every party in this process.

Synthetic inputs (seeded), a share of clients going silent at random phases, then a report:
the round's outcome, the aggregate's error against the plain sum of the survivors, bytes
sent and time per phase (server and clients separately), with progress shown as it runs.
A client that goes silent after its input was already in the sum (e.g. during unmasking) is a
survivor of the round, and is reported as such.  ``--out FILE.json`` also writes the report
as JSON.  For masking protocols the chosen graph (degree, threshold, ring width and, for
SecAgg+, the guarantee the parameter finder reached) is printed first.  ``--lean`` runs the
lean simulation (``runtime.simulation``, 1000+ clients x 10^6 values): each client's input is
drawn from its own seeded stream when the client is made, and the peak RSS is reported.
Exit status: 0 when the round finished within the quantization bound, 1 when it
aborted or missed the bound, 2 for a bad option (see docs/cli.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

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
from fedsecure.protocols.identity import enroll_simulated
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round

CLIENT_MESSAGES = {
    "secagg": ("AdvertiseKeys", "EncryptedShares", "MaskedInput", "UnmaskShares"),
    "secaggplus": ("AdvertiseKeys", "EncryptedShares", "MaskedInput", "UnmaskShares"),
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
    p.add_argument("--allow-small-cohort", action="store_true",
                   help="let a secure protocol run a round whose result could be the sum of"
                        " only two clients (each then learns the other's input)")
    p.add_argument("--security", choices=("semi-honest", "malicious"), default="semi-honest",
                   help="secagg/secaggplus: semi-honest (default) or malicious (against a"
                        " deviating server: signed messages and a consistency round; each"
                        " simulated client gets an identity key, registered before the round)")
    p.add_argument("--lean", action="store_true",
                   help="lean simulation for large rounds: inputs made on demand, finished"
                        " clients released, peak RSS reported")
    p.add_argument("--out", metavar="FILE.json", help="also write the report as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(run=run)


def run(args) -> int:
    require(args.protocol in available_protocols(), "--protocol", args.protocol,
            f"choose one of {available_protocols()}")
    require(args.clients >= 2, "--clients", args.clients, "must be an integer >= 2")
    require(args.dim >= 1, "--dim", args.dim, "must be an integer >= 1")
    require(args.max_weight >= 1, "--max-weight", args.max_weight, "must be an integer >= 1")
    require(args.clip > 0, "--clip", args.clip, "must be a number > 0")
    require(0 <= args.dropout < 1, "--dropout", args.dropout, "must be in [0, 1)")
    spec = AggregationSpec(n_clients=args.clients, vector_length=args.dim,
                           max_weight=args.max_weight, clip=args.clip,
                           allow_small_cohort=args.allow_small_cohort)
    aggregator = make_aggregator(args.protocol, spec, **_security_options(args, spec))
    data = np.random.default_rng(args.seed)  # synthetic inputs only, never secrets
    if args.lean:
        inputs = _OnDemandInputs(args)
    else:
        inputs = {c: (data.uniform(-args.clip, args.clip, args.dim),
                      int(data.integers(1, args.max_weight + 1))) for c in spec.client_ids}
    n_silent = int(round(args.dropout * args.clients))
    silent = data.choice(list(spec.client_ids), size=n_silent, replace=False)
    tags = CLIENT_MESSAGES.get(args.protocol, ("",))
    faults = [Silent(int(c), tags[int(data.integers(len(tags)))]) for c in silent]

    progress = Progress(enabled=not args.quiet)
    began = time.perf_counter()
    report = simulate_round(aggregator, inputs, faults=faults, on_event=progress, lean=args.lean)
    wall = time.perf_counter() - began

    planned = ", ".join(f"{f.party}@{f.before}" for f in faults) or "none"
    print(f"protocol {args.protocol}: {args.clients} clients x {args.dim} values, "
          f"{n_silent} go silent before a message ({planned})")
    graph = _graph_summary(aggregator)
    if graph is not None:
        print(graph["line"])
    summary = _summary(args, faults, report, wall)
    summary["graph"] = graph
    if report.error is None:
        summary.update(_check(aggregator, inputs, report.result, args.clip))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    if report.error is not None:
        print(f"fedsecure simulate: error: round aborted: {report.error}; fewer dropouts"
              f" (--dropout, now {args.dropout:g}) or more clients let it finish",
              file=sys.stderr)
        return 1
    late = summary["silent_after_input"]
    print(f"round finished: {len(summary['survivors'])} survivors, {len(summary['dropped'])}"
          f" dropped {summary['dropped']}"
          + (f"; {late} went silent after their input was in the sum (survivors)" if late
             else ""))
    print(f"total weight {summary['total_weight']:g} (plain {summary['plain_weight']}); max"
          f" |mean - plain mean| = {summary['max_abs_error']:.3g}"
          f" (bound {summary['bound']:.3g})")
    _print_phase_table(report)
    print(f"bytes sent: {report.bytes_total / 1e6:.2f} MB in all, server "
          f"{report.server_stats.total_bytes_sent / 1e6:.2f} MB; wall time {wall:.2f} s;"
          f" peak RSS {report.peak_rss_bytes / 2**20:.0f} MiB")
    if not summary["ok"]:
        print(f"fedsecure simulate: error: the decoded mean is off by"
              f" {summary['max_abs_error']:.3g}, more than the bound {summary['bound']:.3g}:"
              " this is a bug, please report it with this command line", file=sys.stderr)
        return 1
    return 0


def _summary(args, faults, report, wall: float) -> dict:
    """The machine-readable report (``--out``): the options, planned faults and the outcome."""
    result = report.result
    survivors = [] if result is None else list(result.survivors)
    return {
        "protocol": args.protocol, "clients": args.clients, "dim": args.dim,
        "dropout": args.dropout, "max_weight": args.max_weight, "clip": args.clip,
        "seed": args.seed, "security": args.security,
        "silent": [{"client": f.party, "before": f.before} for f in faults],
        "outcome": "aborted" if result is None else "finished",
        "error": None if report.error is None else str(report.error),
        "survivors": survivors,
        "dropped": [] if result is None else list(result.dropped),
        "silent_after_input": sorted(f.party for f in faults if f.party in survivors),
        "bytes_total": report.bytes_total,
        "bytes_server": report.server_stats.total_bytes_sent,
        "bytes_by_message": _bytes_by_message(report),
        "cpu_seconds": {"server": report.seconds_by_phase("server"),
                        "clients": report.seconds_by_phase("clients")},
        "wall_s": wall,
        "peak_rss_bytes": report.peak_rss_bytes,
    }


class _OnDemandInputs:
    """``--lean`` inputs: client c's (vector, weight) from its own stream seeded by (seed, c),
    made when asked (by the simulation, then again for the check) and never held."""

    def __init__(self, args):
        self.args = args

    def __call__(self, client_id: int) -> tuple[np.ndarray, int]:
        data = np.random.default_rng([self.args.seed, client_id])
        return (data.uniform(-self.args.clip, self.args.clip, self.args.dim),
                int(data.integers(1, self.args.max_weight + 1)))

    def __getitem__(self, client_id: int) -> tuple[np.ndarray, int]:
        return self(client_id)


def _security_options(args, spec: AggregationSpec) -> dict:
    if args.security == "semi-honest":
        return {}
    require(args.protocol in ("secagg", "secaggplus"), "--security", args.security,
            "is available for --protocol secagg and secaggplus")
    registry, private = enroll_simulated(spec.client_ids)
    return {"security": "malicious", "identities": registry, "identity_keys": private}


def _graph_summary(aggregator) -> dict | None:
    """The neighbour graph a masking protocol chose: degree, threshold and, for SecAgg+, the
    guarantee the parameter finder reached (None for protocols without a graph)."""
    graph = getattr(aggregator, "graph", None)
    if graph is None:
        return None
    found = getattr(aggregator, "parameters", None)
    out = {"degree": graph.degree, "threshold": aggregator.threshold,
           "modulus_bits": aggregator.fixed_point.modulus_bits,
           "security_bits": None if found is None else _finite(found.security_bits),
           "correctness_bits": None if found is None else _finite(found.correctness_bits)}
    line = (f"graph: degree {graph.degree} of {aggregator.spec.n_clients - 1} others, threshold"
            f" {aggregator.threshold}, ring {out['modulus_bits']} bits")
    if found is not None:
        line += (f"; guarantee ({found.corrupt_fraction:g} corrupt, {found.dropout_fraction:g}"
                 f" dropouts, {found.adversary}): privacy fails with probability"
                 f" {_probability(found.security_bits)}, recovery with"
                 f" {_probability(found.correctness_bits)}")
    elif aggregator.name == "secaggplus":
        line += "; too few clients for a sparse graph: the complete graph of SecAgg"
    out["line"] = line
    return out


def _finite(bits: float) -> float | str:
    return bits if np.isfinite(bits) else "exact"


def _probability(bits: float) -> str:
    """2^-bits, or 0 when the finder proved the event impossible at these fractions."""
    return f"< 2^-{bits:.1f}" if np.isfinite(bits) else "0 (too few corrupt/dropped clients)"


def _check(aggregator, inputs, result, clip: float) -> dict:
    """The decoded mean against the plain weighted mean of the survivors."""
    plain, weight = 0.0, 0
    for c in result.survivors:
        vector, w = inputs[c]
        plain, weight = plain + w * np.clip(vector, -clip, clip), weight + w
    error = float(np.max(np.abs(result.mean - plain / weight)))
    bound = aggregator.quantization_error
    return {"total_weight": result.total_weight, "plain_weight": weight,
            "max_abs_error": error, "bound": bound, "ok": error <= bound + 1e-12}


def _bytes_by_message(report) -> dict[str, int]:
    sent: dict[str, int] = {}
    for stats in report.stats.values():
        for tag, n in stats.bytes_sent.items():
            sent[tag] = sent.get(tag, 0) + n
    return sent


def _print_phase_table(report) -> None:
    sent = _bytes_by_message(report)
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
