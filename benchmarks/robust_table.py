"""Final test accuracy under each attack x each defence, at 10 % and 30 % malicious clients.

    PYTHONPATH=. python benchmarks/robust_table.py            # ~4 min on 2 cores
    PYTHONPATH=. python benchmarks/robust_table.py --rounds 3 --quick   # a smoke run

Every cell is one federated run on the embedded ``digits`` dataset (IID partition, 20 clients,
all sampled every round, the default MLP) through the real training loop
(:func:`fedsecure.fl.loop.run_round`): plain FedAvg, each per-client rule on the plaintext
protocol, the grouped composition (SecAgg inside 10 groups of 2, median across them), and the
norm bound checked under SecAgg (one group, ``max_norm``).  The backdoor column shows the main
accuracy and, after the slash, the backdoor's success rate (lower is better).  ``f`` is the
number of malicious clients (capped at what the rule withstands; ``n/a``: the rule cannot
withstand that many with 20 clients).  Prints Markdown tables (pasted into docs/robust.md);
``--json PATH`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from fedsecure.errors import ConfigurationError
from fedsecure.fl import loop
from fedsecure.fl.config import TrainConfig
from fedsecure.robust import make_rule

ATTACKS = ("none", "sign-flip", "scaling", "gaussian", "alie", "ipm", "label-flip", "backdoor")
TAU = 0.5  # L2 bound of norm bounding (the median honest delta norm is ~0.3 on this job)
DEFENCES = {
    "FedAvg (mean)": dict(protocol="plaintext"),
    "median": dict(protocol="plaintext", robust="median"),
    "trimmed-mean": dict(protocol="plaintext", robust="trimmed-mean"),
    "krum": dict(protocol="plaintext", robust="krum"),
    "multi-krum": dict(protocol="plaintext", robust="multi-krum"),
    "bulyan": dict(protocol="plaintext", robust="bulyan"),
    "norm-bound": dict(protocol="plaintext", robust="norm-bound", robust_options={"tau": TAU}),
    "centered-clipping": dict(protocol="plaintext", robust="centered-clipping"),
    "geometric-median": dict(protocol="plaintext", robust="geometric-median"),
    # groups of 2: each member learns its partner's update, hence allow_small_cohort
    "SecAgg groups=10 + median": dict(protocol="secagg", robust="median", robust_groups=10,
                                      allow_small_cohort=True),
    "SecAgg + max_norm (masked)": dict(protocol="secagg", robust="mean", robust_groups=1,
                                       robust_max_norm=TAU),
}
QUICK = ("FedAvg (mean)", "median", "SecAgg groups=10 + median")


def cell_config(defence: dict, attack: str, fraction: float, *, clients: int, rounds: int,
                seed: int) -> TrainConfig | str:
    """The run of one cell, or why it cannot run."""
    malicious = 0.0 if attack == "none" else fraction
    options = dict(defence)
    if options.get("robust") not in (None, "mean") and malicious:
        bad = math.ceil(malicious * clients - 1e-9)
        inputs = options.get("robust_groups") or clients
        most = make_rule(options["robust"], **options.get("robust_options", {})).max_f(inputs)
        if most < 1:
            return "n/a"
        options["robust_f"] = min(bad, inputs, most)
    try:
        return TrainConfig(dataset="digits", clients=clients, partition="iid", rounds=rounds,
                           seed=seed, attack=None if attack == "none" else attack,
                           malicious=malicious, threads=1, **options)
    except ConfigurationError as exc:
        return f"refused: {exc}"


def run_cell(cfg: TrainConfig) -> dict | str:
    try:
        fed = loop.prepare(cfg)
    except ConfigurationError as exc:
        return f"refused: {exc}"
    for round_index in range(1, cfg.rounds + 1):
        row = loop.run_round(fed, round_index)
    return {"accuracy": row["accuracy"], "backdoor_success": row.get("backdoor_success"),
            "aborted": row["aborted"]}


def fmt(cell) -> str:
    if isinstance(cell, str):
        return cell if len(cell) < 12 else "refused"
    text = f"{100 * cell['accuracy']:.1f}"
    if cell["backdoor_success"] is not None:
        text += f" / {100 * cell['backdoor_success']:.0f}"
    return text + (" (aborted)" if cell["aborted"] else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="three defences only")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    names = QUICK if args.quick else tuple(DEFENCES)
    began = time.perf_counter()
    results: dict = {}
    for fraction in (0.1, 0.3):
        print(f"\n**{int(fraction * 100)} % malicious clients** ({args.clients} clients,"
              f" {args.rounds} rounds; accuracy %, backdoor: accuracy / attack success %)\n")
        print("| defence | " + " | ".join(ATTACKS) + " |")
        print("|---" * (len(ATTACKS) + 1) + "|")
        for name in names:
            cells = []
            for attack in ATTACKS:
                key = (name, attack, 0.0 if attack == "none" else fraction)
                if key not in results:
                    cfg = cell_config(DEFENCES[name], attack, fraction, clients=args.clients,
                                      rounds=args.rounds, seed=args.seed)
                    results[key] = cfg if isinstance(cfg, str) else run_cell(cfg)
                cells.append(fmt(results[key]))
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n({time.perf_counter() - began:.0f} s)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([{"defence": k[0], "attack": k[1], "malicious": k[2], "result": v}
                       for k, v in results.items()], handle, indent=1)


if __name__ == "__main__":
    main()
