"""Privacy-utility: test accuracy against epsilon for the three DP placements.

    PYTHONPATH=. python benchmarks/privacy_utility.py            # the table in docs/dp.md

Trains the embedded digits dataset (1437 training images) over ``--clients`` clients (IID
split, logistic model, every client every round) with ``fedsecure.fl.loop.train`` -- the same
code path as ``fedsecure train --dp ...`` -- for each epsilon, placement and seed:

* ``central``     -- plaintext aggregation, Gaussian noise on the sum at the server;
* ``distributed`` -- SecAgg with discrete Gaussian shares inside the masked ring (noise sized
  for all clients surviving: ``dp_survivors = 1``, i.e. SecAgg threshold n);
* ``local``       -- plaintext aggregation of locally noised updates (contrast);
* ``none``        -- no DP (one run per seed), the ceiling.

First, for each epsilon, one round of central and of distributed DP over the same clipped
inputs measures the noise each really adds to the sum (they should match). Then each row is
the mean (and spread) of the final test accuracy over the seeds; results go to
``benchmarks/results/dp_privacy_utility.json`` and the plot to
``docs/dp_privacy_utility.png``.
Noise comes from the OS CSPRNG, so reruns differ by the noise; the seeds fix data and training.
"""

from __future__ import annotations

import argparse
import json
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
PROTOCOL = {"central": "plaintext", "local": "plaintext", "distributed": "secagg",
            "none": "plaintext"}


def run_one(placement: str, epsilon: float | None, seed: int, args, folder: Path) -> dict:
    config = TrainConfig(
        clients=args.clients, partition="iid", model="logistic", rounds=args.rounds,
        local_epochs=2, lr=0.1, seed=seed, protocol=PROTOCOL[placement],
        dp=None if placement == "none" else placement,
        epsilon=None if placement == "none" else epsilon, delta=args.delta,
        clip_norm=args.clip_norm, dp_survivors=1.0,
        run_dir=str(folder / f"{placement}-{epsilon}-{seed}"))
    began = time.perf_counter()
    result = loop.train(config)
    final = result.metrics[-1]
    return {"placement": placement, "epsilon_target": epsilon, "seed": seed,
            "accuracy": final["accuracy"], "epsilon_spent": final["epsilon"],
            "noise_multiplier": final.get("noise_multiplier"),
            "seconds": time.perf_counter() - began}


def noise_check(args, epsilon: float) -> dict:
    """The noise one round actually adds to the sum, central vs distributed, at ``epsilon``:
    the same clipped inputs through both, the error's standard deviation per coordinate."""
    spec = AggregationSpec(n_clients=args.clients, vector_length=650, min_clients=args.clients)
    z = calibrate_noise_multiplier(epsilon, args.delta, args.rounds)
    data = np.random.default_rng(0)  # update values only; noise comes from the CSPRNG
    inputs = {c: (l2_clip(data.normal(size=650), args.clip_norm), 1) for c in spec.client_ids}
    exact = sum(v for v, _ in inputs.values())
    out = {"epsilon": epsilon, "noise_multiplier": z, "target_stddev": z * args.clip_norm}
    for placement, protocol in (("central", "plaintext"), ("distributed", "secagg")):
        aggregator = make_dp_aggregator(placement, spec, protocol=protocol,
                                        clip_norm=args.clip_norm, noise_multiplier=z)
        result = simulate_round(aggregator, inputs).result
        out[f"{placement}_stddev"] = float(np.std(result.weighted_sum - exact))
    return out


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault((row["placement"], row["epsilon_target"]), []).append(row["accuracy"])
    return [{"placement": p, "epsilon": e, "mean": statistics.mean(a),
             "spread": statistics.pstdev(a) if len(a) > 1 else 0.0, "runs": len(a)}
            for (p, e), a in groups.items()]


def table(summary: list[dict], epsilons: list[float]) -> str:
    by = {(s["placement"], s["epsilon"]): s for s in summary}
    lines = ["| epsilon | central | distributed (SecAgg) | distributed - central | local |",
             "|---|---|---|---|---|"]
    for e in epsilons:
        cells = [by.get((p, e)) for p in ("central", "distributed", "local")]
        text = [f"{100 * c['mean']:.1f} ± {100 * c['spread']:.1f}" if c else "—" for c in cells]
        gap = (f"{100 * (cells[1]['mean'] - cells[0]['mean']):+.1f} pp"
               if cells[0] and cells[1] else "—")
        lines.append(f"| {e:g} | {text[0]} | {text[1]} | {gap} | {text[2]} |")
    if ("none", None) in by:
        s = by[("none", None)]
        lines.append(f"| no DP | {100 * s['mean']:.1f} ± {100 * s['spread']:.1f} | | | |")
    return "\n".join(lines)


def noise_table(noise: list[dict]) -> str:
    lines = ["| epsilon | z | target sigma of the sum | central, measured | distributed, measured |"
             " ratio |", "|---|---|---|---|---|---|"]
    for row in noise:
        lines.append(f"| {row['epsilon']:g} | {row['noise_multiplier']:.3f} |"
                     f" {row['target_stddev']:.4f} | {row['central_stddev']:.4f} |"
                     f" {row['distributed_stddev']:.4f} |"
                     f" {row['distributed_stddev'] / row['central_stddev']:.4f} |")
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
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--clip-norm", type=float, default=0.3)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/dp_privacy_utility.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/dp_privacy_utility.png")
    args = parser.parse_args()
    noise = [noise_check(args, e) for e in args.epsilons]
    for row in noise:
        print(json.dumps(row), flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [("none", None, s) for s in range(args.seeds)] + [
            (p, e, s) for e in args.epsilons for p in args.placements for s in range(args.seeds)]
        for placement, epsilon, seed in jobs:
            rows.append(run_one(placement, epsilon, seed, args, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
            summary = summarize(rows)
            args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                            "noise": noise, "runs": rows,
                                            "summary": summary}, indent=2) + "\n")
    plot(summary, args.plot)
    print(table(summary, args.epsilons))
    print(noise_table(noise))


if __name__ == "__main__":
    main()
