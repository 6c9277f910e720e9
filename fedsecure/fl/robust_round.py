"""Byzantine robustness and attack simulation in training rounds (see docs/robust.md).

The training configuration names a rule (``robust``), how many Byzantine inputs it must
withstand (``robust_f``), optionally secure groups (``robust_groups``: the rule then runs
across securely aggregated groups, the ``grouped`` protocol) and a per-client L2 bound checked
under masking (``robust_max_norm``), and an attack (``attack``) played by a fixed
``malicious`` fraction of the clients.  :func:`aggregation` turns that into the protocol name
and options the round runs (the loop still never branches on the protocol); the functions
below poison the malicious clients' data or deltas and summarize each round's verdicts.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from fedsecure.config import require
from fedsecure.fl.attacks import (
    ATTACKS,
    DATA_ATTACKS,
    UPDATE_ATTACKS,
    attack_options,
    poison_data,
    poison_updates,
    stamp_trigger,
)
from fedsecure.fl.client import LocalUpdate
from fedsecure.fl.model import evaluate
from fedsecure.robust import RULES


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_config(cfg) -> None:
    """Validate the robustness and attack fields of a TrainConfig (ConfigurationError)."""
    require(cfg.robust is None or cfg.robust in RULES, "robust", cfg.robust,
            f"unknown rule; choose one of {sorted(RULES)}")
    require(cfg.robust_f is None or (_is_int(cfg.robust_f) and cfg.robust_f >= 0), "robust_f",
            cfg.robust_f, "must be an integer >= 0 (Byzantine inputs to withstand), or unset")
    require(cfg.robust_groups is None or (_is_int(cfg.robust_groups) and cfg.robust_groups >= 1),
            "robust_groups", cfg.robust_groups, "must be an integer >= 1, or unset")
    require(cfg.robust_max_norm is None or (isinstance(cfg.robust_max_norm, (int, float))
                                            and math.isfinite(cfg.robust_max_norm)
                                            and cfg.robust_max_norm > 0),
            "robust_max_norm", cfg.robust_max_norm, "must be a number > 0, or unset")
    require(isinstance(cfg.robust_options, dict), "robust_options", cfg.robust_options,
            "must be a table of rule options")
    for name in ("robust_f", "robust_groups", "robust_max_norm"):
        require(getattr(cfg, name) is None or cfg.robust is not None, name, getattr(cfg, name),
                "needs a rule: set robust (e.g. --robust median)")
    require(cfg.robust_max_norm is None or cfg.robust_groups is not None, "robust_max_norm",
            cfg.robust_max_norm, "is the bound checked under masking: it needs robust_groups"
            " (use robust = 'norm-bound' with robust_options.tau on plaintext)")
    require(isinstance(cfg.malicious, (int, float)) and not isinstance(cfg.malicious, bool)
            and 0 <= cfg.malicious < 1, "malicious", cfg.malicious, "must be a fraction in [0, 1)")
    require(cfg.attack is None or cfg.attack in ATTACKS, "attack", cfg.attack,
            f"unknown; choose one of {list(ATTACKS)}")
    require((cfg.attack is None) == (cfg.malicious == 0), "malicious", cfg.malicious,
            "an attack needs a malicious fraction > 0 and a malicious fraction needs an attack"
            f" (attack={cfg.attack!r})")
    require(isinstance(cfg.attack_options, dict), "attack_options", cfg.attack_options,
            "must be a table of attack options")
    if cfg.attack is not None:
        attack_options(cfg.attack, cfg.attack_options)
    if cfg.robust is not None and cfg.robust_groups is None:
        require(cfg.protocol == "plaintext", "robust", cfg.robust,
                f"needs individual updates, which protocol {cfg.protocol!r} hides: add"
                " --robust-groups G (the rule across G securely aggregated groups; see"
                " docs/robust.md) or use --protocol plaintext (the server sees every update)")


def assumed_f(cfg) -> int | None:
    """``robust_f``, else the malicious clients a round can hold (capped by the groups), else
    None (the protocol's default: the most the rule withstands; 0 for the mean)."""
    if cfg.robust_f is not None or cfg.malicious == 0 or not RULES[cfg.robust].per_update:
        return cfg.robust_f
    count = math.ceil(cfg.malicious * cfg.clients_per_round - 1e-9)
    return count if cfg.robust_groups is None else min(count, cfg.robust_groups)


def aggregation(cfg) -> tuple[str, dict]:
    """The (protocol, options) a round of ``cfg`` runs."""
    if cfg.robust is None:
        return cfg.protocol, dict(cfg.protocol_options)
    rule = {"rule": cfg.robust, "f": assumed_f(cfg), "rule_options": dict(cfg.robust_options)}
    if cfg.robust_groups is None:
        return "robust", rule
    return "grouped", {"inner": cfg.protocol, "groups": cfg.robust_groups,
                       "inner_options": dict(cfg.protocol_options),
                       "max_norm": cfg.robust_max_norm, **rule}


def malicious_clients(cfg, seed: int) -> tuple[int, ...]:
    """The fixed set of malicious client indices of a run (drawn once from ``seed``)."""
    if cfg.malicious == 0:
        return ()
    count = max(1, int(cfg.malicious * cfg.clients + 0.5))
    rng = np.random.default_rng(seed)
    return tuple(sorted(int(c) for c in rng.choice(cfg.clients, size=count, replace=False)))


def poison_client_data(cfg, client_data: list, n_classes: int, seed: int) -> list:
    """``client_data`` with the malicious clients' (x, y) poisoned by a data attack."""
    if cfg.attack not in DATA_ATTACKS:
        return client_data
    rng = np.random.default_rng(seed)
    out = list(client_data)
    for client in malicious_clients(cfg, seed):
        x, y = out[client]
        out[client] = poison_data(cfg.attack, x, y, n_classes=n_classes, rng=rng,
                                  **cfg.attack_options)
    return out


def attack_updates(cfg, updates: list[tuple[int, LocalUpdate]], *, seed: int, round_seed: int
                   ) -> list[tuple[int, LocalUpdate]]:
    """The round's updates with the sampled malicious clients' deltas replaced by an update
    attack (``seed`` picks the malicious set, ``round_seed`` the attack's randomness)."""
    if cfg.attack not in UPDATE_ATTACKS:
        return updates
    bad = set(malicious_clients(cfg, seed))
    chosen = [i for i, (client, _) in enumerate(updates) if client in bad]
    if not chosen:
        return updates
    deltas = np.stack([u.delta for _, u in updates])
    honest = np.delete(deltas, chosen, axis=0)
    poisoned = poison_updates(cfg.attack, deltas[chosen], honest,
                              rng=np.random.default_rng(round_seed), **cfg.attack_options)
    out = list(updates)
    for i, delta in zip(chosen, poisoned):
        client, update = out[i]
        out[i] = (client, replace(update, delta=np.asarray(delta, dtype=np.float64)))
    return out


def robust_report(result, clients) -> dict | None:
    """A round's verdicts with client indices: which inputs were rejected or down-weighted."""
    verdicts = getattr(result, "verdicts", None)
    if verdicts is None:
        return None

    def named(members):
        return [clients[i - 1] for i in members]

    return {
        "rule": result.rule,
        "inputs": len(verdicts),
        "rejected": [named(v.members) for v in verdicts if v.status == "rejected"],
        "downweighted": [named(v.members) for v in verdicts if v.status == "down-weighted"],
        "flagged": [named(v.members) for v in verdicts if v.flagged],
        "reasons": sorted({v.reason for v in verdicts if v.reason}),
    }


def round_metrics(fed, sampled, *, seed: int) -> dict:
    """The malicious clients among ``sampled`` and, for the backdoor, its success rate: the
    share of triggered test samples of other classes that the model labels ``target``."""
    cfg = fed.config
    bad = set(malicious_clients(cfg, seed))
    row: dict = {"malicious": [c for c in sampled if c in bad]}
    if cfg.attack == "backdoor":
        options = attack_options("backdoor", cfg.attack_options)
        keep = fed.y_test != options["target"]
        stamped = stamp_trigger(fed.x_test[keep], trigger_features=options["trigger_features"],
                                trigger_value=options["trigger_value"])
        row["backdoor_success"] = evaluate(fed.model, stamped,
                                           fed.y_test[keep] * 0 + options["target"])[0]
    return row
