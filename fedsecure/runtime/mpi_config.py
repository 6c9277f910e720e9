"""What one MPI round runs: its validated configuration (shared by every rank, from CLI flags
or a TOML/JSON file), the fault schedule syntax, and the deterministic synthetic inputs that
let rank 0 — or a test — recompute the plain sum of the survivors.

Nothing here imports mpi4py: configurations and synthetic data are usable without the
``mpi`` extra.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedsecure.config import require
from fedsecure.errors import ConfigurationError
from fedsecure.messages import ALL_MESSAGES, SERVER_ID
from fedsecure.protocols.base import (
    AggregationSpec,
    Aggregator,
    available_protocols,
    make_aggregator,
)
from fedsecure.runtime.driver import Deadlines
from fedsecure.runtime.faults import Crash, Fault, Silent, parse_fault

MESSAGE_TAGS = frozenset(m.__name__ for m in ALL_MESSAGES)

UpdateFn = Callable[[int], "tuple[np.ndarray, int]"]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class MPIRoundConfig:
    """Everything every rank must agree on; the number of clients is the world size - 1.

    ``deadline_s`` is how long the server waits in each collection phase (``phase_deadlines_s``
    overrides it per server phase); ``round_timeout_s`` bounds a whole rank's life (a client
    also gives up on a server that has been silent that long); ``report_timeout_s`` is how long
    rank 0 waits for the other ranks' statistics after the round.  ``warm_up`` runs two small
    in-process rounds on every rank first (a tiny one, then 3 clients at the round's vector
    length), so one-off costs (loading compiled kernels, lazy imports, the heap's first
    growth) are not paid inside the real round's deadlines.  ``protocol_options`` go to the
    protocol's aggregator (e.g. ``scale_bits`` for SecAgg); ``round`` is the round number the
    parties' envelopes carry (a caller running several rounds, such as training, counts them).
    ``dp`` (set by DP training, :mod:`fedsecure.fl.dp_round`; not a ``--config`` option) wraps
    the protocol in a differential privacy placement: the keywords of
    :func:`fedsecure.dp.make_dp_aggregator` besides the spec and the inner protocol
    (``placement``, ``clip_norm``, ``noise_multiplier``, ``count_share``), so each client rank
    clips and noises its own input and rank 0 decodes (and, central, noises) the sum.
    """

    protocol: str = "secagg"
    protocol_options: Mapping[str, Any] = field(default_factory=dict)
    round: int = 0
    dim: int = 1000
    seed: int = 0
    max_weight: int = 1
    clip: float = 1.0
    min_clients: int | None = None
    deadline_s: float = 30.0
    phase_deadlines_s: Mapping[str, float] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    round_timeout_s: float = 600.0
    report_timeout_s: float = 10.0
    warm_up: bool = True
    dp: Mapping[str, Any] | None = None

    def __post_init__(self):
        require(isinstance(self.protocol, str) and self.protocol in available_protocols(),
                "protocol", self.protocol, f"choose one of {available_protocols()}")
        require(isinstance(self.protocol_options, Mapping)
                and all(isinstance(k, str) for k in self.protocol_options),
                "protocol_options", self.protocol_options, "must be a table of named options")
        require(isinstance(self.round, int) and self.round >= 0, "round", self.round,
                "must be an integer >= 0")
        require(isinstance(self.dim, int) and self.dim >= 1, "dim", self.dim,
                "must be an integer >= 1")
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed,
                "must be an integer >= 0")
        for name in ("deadline_s", "round_timeout_s", "report_timeout_s"):
            value = getattr(self, name)
            require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                    name, value, "must be a finite number of seconds > 0")
        for phase, seconds in self.phase_deadlines_s.items():
            require(isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0,
                    f"phase_deadlines_s[{phase!r}]", seconds, "must be a finite number > 0")
        require(self.dp is None or (isinstance(self.dp, Mapping) and "placement" in self.dp
                                    and all(isinstance(k, str) for k in self.dp)),
                "dp", self.dp, "must be a table of DP options with a placement, or unset")
        if self.dp is not None:
            object.__setattr__(self, "dp", dict(self.dp))
        object.__setattr__(self, "phase_deadlines_s", dict(self.phase_deadlines_s))
        object.__setattr__(self, "protocol_options", dict(self.protocol_options))
        object.__setattr__(self, "faults", tuple(self.faults))
        for fault in self.faults:
            require(isinstance(fault, (Silent, Crash)), "faults", fault,
                    "only Silent and Crash faults can be scheduled on MPI ranks")
            require(fault.party != SERVER_ID, "faults", fault,
                    "rank 0 is the server; only client ranks (>= 1) can be faulted")
            require(fault.before in MESSAGE_TAGS, "faults", fault,
                    f"unknown message tag {fault.before!r}; one of {sorted(MESSAGE_TAGS)}")

    def aggregator(self, n_clients: int, session: bytes) -> Aggregator:
        """The round's aggregator for ``n_clients`` clients and the agreed session id."""
        return self.build(AggregationSpec(
            n_clients=n_clients, vector_length=self.dim, max_weight=self.max_weight,
            clip=self.clip, min_clients=self.min_clients, session=session, round=self.round))

    def build(self, spec: AggregationSpec) -> Aggregator:
        """This configuration's protocol (inside its DP placement, if any) over ``spec``."""
        if self.dp is None:
            return make_aggregator(self.protocol, spec, **self.protocol_options)
        from fedsecure.dp import make_dp_aggregator  # extra: dp

        return make_dp_aggregator(spec=spec, protocol=self.protocol,
                                  protocol_options=self.protocol_options, **self.dp)

    def deadlines(self) -> Deadlines:
        return Deadlines(default_s=self.deadline_s, per_phase_s=self.phase_deadlines_s,
                         client_idle_s=self.round_timeout_s)

    def check_world(self, world_size: int) -> int:
        """The number of clients for ``world_size`` ranks, checked against this config."""
        require(world_size >= 3, "world size", world_size,
                "needs rank 0 (server) and at least 2 client ranks: run under mpirun -n 3 or more")
        n = world_size - 1
        for fault in self.faults:
            require(1 <= fault.party <= n, "faults", fault, f"client ranks are 1..{n}")
        return n

    def crashing_ranks(self) -> set[int]:
        return {f.party for f in self.faults if isinstance(f, Crash)}

    def faults_of(self, rank: int) -> str | None:
        """The faults scheduled for ``rank``, as text (None: none)."""
        return ", ".join(fault_text(f) for f in self.faults if f.party == rank) or None

    def to_json(self) -> dict:
        return {
            "protocol": self.protocol, "protocol_options": dict(self.protocol_options),
            "round": self.round, "dim": self.dim, "seed": self.seed,
            "max_weight": self.max_weight, "clip": self.clip, "min_clients": self.min_clients,
            "deadline_s": self.deadline_s, "phase_deadlines_s": dict(self.phase_deadlines_s),
            "faults": [fault_text(f) for f in self.faults],
            "round_timeout_s": self.round_timeout_s, "report_timeout_s": self.report_timeout_s,
            "warm_up": self.warm_up, "dp": None if self.dp is None else dict(self.dp),
        }

    def digest(self, world_size: int) -> bytes:
        canonical = json.dumps({"world_size": world_size, **self.to_json()}, sort_keys=True)
        return hashlib.sha256(b"fedsecure/mpi-round/v1" + canonical.encode()).digest()


def fault_text(fault: Fault) -> str:
    """``silent 3:MaskedInput`` / ``crash 5:UnmaskShares`` (the CLI syntax)."""
    return f"{type(fault).__name__.lower()} {fault.party}:{fault.before}"


def faults_from_cli(silent=(), crash=()) -> tuple[Fault, ...]:
    """Faults from ``--silent RANK:TAG`` / ``--crash RANK:TAG`` strings."""
    return tuple(parse_fault("silent", s) for s in silent) + tuple(
        parse_fault("crash", c) for c in crash)


def load_config_file(path: str) -> dict:
    """Read a round configuration (``.toml`` or ``.json``) into keyword arguments of
    :class:`MPIRoundConfig`; faults are given as ``silent = ["3:MaskedInput"]`` /
    ``crash = ["5:UnmaskShares"]`` lists."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigurationError(f"--config={path!r}: cannot read it ({exc.strerror})") from None
    try:
        if path.endswith(".toml"):
            data = _toml_loads(path, raw.decode())
        elif path.endswith(".json"):
            data = json.loads(raw)
        else:
            raise ConfigurationError(f"--config={path!r}: expected a .toml or .json file")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--config={path!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"--config={path!r}: expected a table of options")
    allowed = set(MPIRoundConfig.__dataclass_fields__) - {"faults", "dp"} | {"silent", "crash"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigurationError(f"--config={path!r}: unknown options {unknown}")
    faults = faults_from_cli(data.pop("silent", ()), data.pop("crash", ()))
    return {**data, "faults": faults} if faults else data


def _toml_loads(path: str, text: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigurationError(f"--config={path!r}: reading TOML needs Python 3.11+ or"
                                     " the tomli package; or use a .json config") from None
    return tomllib.loads(text)


# --------------------------------------------------------------------------- synthetic data


def synthetic_update(config: MPIRoundConfig, client_id: int) -> tuple[np.ndarray, int]:
    """Client ``client_id``'s deterministic synthetic update: values uniform in [-clip, clip]
    and an integer weight in [1, max_weight], from (seed, client id) alone — so rank 0 and the
    tests can recompute any client's input.  Not random enough for anything but test data."""
    data = np.random.default_rng([config.seed, client_id])
    vector = data.uniform(-config.clip, config.clip, config.dim)
    weight = int(data.integers(1, config.max_weight + 1))
    return vector, weight


def plain_sum(update: UpdateFn, survivors, clip: float) -> tuple[np.ndarray, float]:
    """Sum of weight * clip(vector) over ``survivors``, and of their weights."""
    total, weight = 0.0, 0.0
    for client in survivors:
        vector, w = update(client)
        total = total + w * np.clip(vector, -clip, clip)
        weight += w
    return np.asarray(total, dtype=np.float64), weight
