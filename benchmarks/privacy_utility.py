"""Privacy-utility: test accuracy against epsilon for the three DP placements.

    PYTHONPATH=. python benchmarks/privacy_utility.py --seeds 60 30 12 8   # docs/dp.md

Trains the embedded digits dataset (1437 training images) over ``--clients`` clients (IID
split, logistic model, every client every round) with ``fedsecure.fl.loop.train`` -- the same
code path as ``fedsecure train --dp ...`` -- for each epsilon, placement and seed:

* ``central``     -- plaintext aggregation, Gaussian noise on the sum at the server;
* ``distributed`` -- secure aggregation (``--distributed-protocol``: SecAgg+ by default, or
  SecAgg) with discrete Gaussian shares inside the masked ring (noise sized for all clients
  surviving: ``dp_survivors = 1``, i.e. threshold n);
* ``local``       -- plaintext aggregation of locally noised updates (contrast);
* ``none``        -- no DP (one run per seed), the ceiling.

First, for each epsilon, one round of central and of distributed DP over the same clipped
inputs measures the noise each really adds to the sum (they should match). Then each row is
the mean (and spread) of the final test accuracy over the seeds -- ``--seeds`` gives one count
per epsilon (more where the noise makes accuracy vary more) and runs are interleaved, so an
interrupted run still covers every epsilon; central and distributed share each seed (same data
split and training), so their gap is also reported paired, with its standard error. Local DP
and no DP (contrast) run ``--contrast-seeds`` seeds. Results go to
``benchmarks/results/dp_privacy_utility.json`` and the plot to
``docs/dp_privacy_utility.png``.
Noise comes from the OS CSPRNG, so reruns differ by the noise; the seeds fix data and training.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fedsecure.dp import calibrate_noise_multiplier, l2_clip, make_dp_aggregator
from fedsecure.fl import loop
from fedsecure.fl.config import TrainConfig
from fedsecure.protocols.base import AggregationSpec
from fedsecure.runtime.simulation import simulate_round

ROOT = Path(__file__).resolve().parents[1]
PLAINTEXT = {"central": "plaintext", "local": "plaintext", "none": "plaintext"}


def protocol_of(placement: str, args) -> str:
    return PLAINTEXT.get(placement, args.distributed_protocol)


def run_one(placement: str, epsilon: float | None, seed: int, args, folder: Path) -> dict:
    config = TrainConfig(
        clients=args.clients, partition="iid", model="logistic", rounds=args.rounds,
        local_epochs=2, lr=0.1, seed=seed, protocol=protocol_of(placement, args),
        dp=None if placement == "none" else placement,
        epsilon=None if placement == "none" else epsilon, delta=args.delta,
        clip_norm=args.clip_norm, dp_survivors=1.0,
        run_dir=str(folder / f"{placement}-{epsilon}-{seed}"))
    began = time.perf_counter()
    result = loop.train(config)
    final = result.metrics[-1]
    return {"placement": placement, "protocol": config.protocol, "epsilon_target": epsilon,
            "seed": seed,
            "accuracy": final["accuracy"], "epsilon_spent": final["epsilon"],
            "noise_multiplier": final.get("noise_multiplier"),
            "seconds": time.perf_counter() - began}


def noise_check(args, epsilon: float) -> dict:
    """The noise the sum actually carries, central vs distributed, at ``epsilon``: the same
    clipped inputs through both for ``--noise-rounds`` rounds; the error's standard deviation
    over all coordinates and rounds (relative standard error 1 / sqrt(2 * samples)) and its
    excess kurtosis (0 for a Gaussian)."""
    spec = AggregationSpec(n_clients=args.clients, vector_length=650, min_clients=args.clients)
    z = calibrate_noise_multiplier(epsilon, args.delta, args.rounds)
    data = np.random.default_rng(0)  # update values only; noise comes from the CSPRNG
    inputs = {c: (l2_clip(data.normal(size=650), args.clip_norm), 1) for c in spec.client_ids}
    exact = sum(v for v, _ in inputs.values())
    out = {"epsilon": epsilon, "noise_multiplier": z, "target_stddev": z * args.clip_norm,
           "rounds": args.noise_rounds, "samples": 650 * args.noise_rounds}
    for placement in ("central", "distributed"):
        protocol = protocol_of(placement, args)
        errors = []
        for _ in range(args.noise_rounds):
            aggregator = make_dp_aggregator(placement, spec, protocol=protocol,
                                            clip_norm=args.clip_norm, noise_multiplier=z)
            errors.append(simulate_round(aggregator, inputs).result.weighted_sum - exact)
        errors = np.concatenate(errors)
        out[f"{placement}_stddev"] = float(np.std(errors))
        out[f"{placement}_kurtosis"] = float(np.mean(errors**4) / np.var(errors) ** 2 - 3)
        if placement == "distributed":  # what the mechanism plans: sqrt(n s) integer steps
            out["distributed_planned_stddev"] = math.sqrt(
                args.clients * aggregator.local_variance) * aggregator.granularity
    return out


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault((row["placement"], row["epsilon_target"]), []).append(row["accuracy"])
    return [{"placement": p, "epsilon": e, "mean": statistics.mean(a),
             "spread": statistics.pstdev(a) if len(a) > 1 else 0.0, "runs": len(a)}
            for (p, e), a in groups.items()]


def paired_gaps(rows: list[dict]) -> list[dict]:
    """distributed - central accuracy per epsilon over the seeds both ran (within a batch of
    runs): mean, standard deviation and standard error of the per-seed difference (same data
    split and training, fresh noise)."""
    accuracy = {(r["placement"], r["epsilon_target"], r.get("batch", 0), r["seed"]): r["accuracy"]
                for r in rows}
    out = []
    for e in sorted({r["epsilon_target"] for r in rows if r["epsilon_target"] is not None}):
        diffs = [accuracy[("distributed", e, b, s)] - accuracy[("central", e, b, s)]
                 for (p, ee, b, s) in accuracy if p == "central" and ee == e
                 and ("distributed", e, b, s) in accuracy]
        if len(diffs) > 1:
            sd = statistics.stdev(diffs)
            out.append({"epsilon": e, "pairs": len(diffs), "mean": statistics.mean(diffs),
                        "stdev": sd, "stderr": sd / math.sqrt(len(diffs))})
    return out


def table(summary: list[dict], gaps: list[dict], epsilons: list[float]) -> str:
    by = {(s["placement"], s["epsilon"]): s for s in summary}
    gap_at = {g["epsilon"]: g for g in gaps}
    lines = ["| epsilon | pairs | central | distributed | distributed - central (paired)"
             " | 95% interval of the gap | local |", "|---|---|---|---|---|---|---|"]
    for e in epsilons:
        cells = [by.get((p, e)) for p in ("central", "distributed", "local")]
        text = [f"{100 * c['mean']:.1f} ± {100 * c['spread']:.1f}" if c else "—" for c in cells]
        g = gap_at.get(e)
        gap = f"{100 * g['mean']:+.2f} ± {100 * g['stderr']:.2f} pp" if g else "—"
        interval = (f"[{100 * (g['mean'] - 1.96 * g['stderr']):+.2f}, "
                    f"{100 * (g['mean'] + 1.96 * g['stderr']):+.2f}]" if g else "—")
        seeds = g["pairs"] if g else (cells[0]["runs"] if cells[0] else 0)
        lines.append(f"| {e:g} | {seeds} | {text[0]} | {text[1]} | {gap} | {interval} |"
                     f" {text[2]} |")
    if ("none", None) in by:
        s = by[("none", None)]
        lines.append(f"| no DP | {s['runs']} | {100 * s['mean']:.1f} ± {100 * s['spread']:.1f}"
                     " | | | | |")
    return "\n".join(lines)


def noise_table(noise: list[dict]) -> str:
    lines = ["| epsilon | z | target sigma of the sum (zC) | distributed, planned |"
             " central, measured | distributed, measured | ratio ± s.e. |"
             " excess kurtosis central / distributed |", "|---|---|---|---|---|---|---|---|"]
    for row in noise:
        ratio = row["distributed_stddev"] / row["central_stddev"]
        stderr = ratio * math.sqrt(2 / (2 * row["samples"]))  # two independent estimates
        lines.append(f"| {row['epsilon']:g} | {row['noise_multiplier']:.3f} |"
                     f" {row['target_stddev']:.4f} | {row['distributed_planned_stddev']:.4f} |"
                     f" {row['central_stddev']:.4f} | {row['distributed_stddev']:.4f} |"
                     f" {ratio:.4f} ± {stderr:.4f} | {row['central_kurtosis']:+.3f} /"
                     f" {row['distributed_kurtosis']:+.3f} |")
    return "\n".join(lines)


def plot(summary: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for placement, style in (("central", "o-"), ("distributed", "s--"), ("local", "^:")):
        points = sorted((s["epsilon"], s["mean"], s["spread"]) for s in summary
                        if s["placement"] == placement)
        if points:
            axes.errorbar([p[0] for p in points], [100 * p[1] for p in points],
                          yerr=[100 * p[2] for p in points], fmt=style, capsize=3,
                          label=placement)
    for s in summary:
        if s["placement"] == "none":
            axes.axhline(100 * s["mean"], color="grey", lw=1, label="no DP")
    axes.set(xscale="log", xlabel="epsilon (delta = 1e-5)", ylabel="final test accuracy (%)",
             title="digits, 100 clients: accuracy vs privacy")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--placements", nargs="+", default=["central", "distributed", "local"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3],
                        help="seeds per epsilon (one count, or one per --epsilons entry)")
    parser.add_argument("--contrast-seeds", type=int, default=6,
                        help="seeds for local DP and for no DP")
    parser.add_argument("--distributed-protocol", choices=("secaggplus", "secagg"),
                        default="secaggplus")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--clip-norm", type=float, default=0.3)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/dp_privacy_utility.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/dp_privacy_utility.png")
    parser.add_argument("--noise-rounds", type=int, default=20,
                        help="rounds of the noise measurement per epsilon and placement")
    parser.add_argument("--noise-only", action="store_true",
                        help="only measure the noise, into --out (keeping its runs)")
    parser.add_argument("--report", action="store_true",
                        help="only redo the tables and the plot from the runs in --out")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="with --report: also count the runs of these earlier outputs of"
                        " this script (same settings; paired within each file)")
    args = parser.parse_args()
    if len(args.seeds) == 1:
        args.seeds = args.seeds * len(args.epsilons)
    if len(args.seeds) != len(args.epsilons):
        parser.error("--seeds: give one count, or one per --epsilons entry")
    saved = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.report:
        rows = list(saved["runs"])
        for batch, path in enumerate(args.merge, start=1):
            rows += [dict(r, batch=batch) for r in json.loads(path.read_text())["runs"]]
        return report(rows, saved["noise"], args)
    noise = [noise_check(args, e) for e in args.epsilons]
    for row in noise:
        print(json.dumps(row), flush=True)
    if args.noise_only:
        write(args, noise, saved.get("runs", []))
        print(noise_table(noise))
        return
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [("none", None, s) for s in range(args.contrast_seeds)]
        for seed in range(max(args.seeds)):  # interleaved: every epsilon advances together
            for e, count in zip(args.epsilons, args.seeds):
                jobs += [(p, e, seed) for p in args.placements
                         if seed < (args.contrast_seeds if p == "local" else count)]
        for placement, epsilon, seed in jobs:
            rows.append(run_one(placement, epsilon, seed, args, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
            write(args, noise, rows)
    report(rows, noise, args)


def write(args, noise: list[dict], rows: list[dict]) -> None:
    args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                    "noise": noise, "runs": rows, "summary": summarize(rows),
                                    "paired_gaps": paired_gaps(rows)}, indent=2) + "\n")


def report(rows: list[dict], noise: list[dict], args) -> None:
    summary = summarize(rows)
    plot(summary, args.plot)
    print(table(summary, paired_gaps(rows), args.epsilons))
    print(noise_table(noise))


if __name__ == "__main__":
    main()
