"""End-to-end scenarios shared by every runtime: the same list runs in-process over the memory
transport (``tests/runtime/test_e2e_memory.py``) and as MPI ranks under ``mpirun``
(``tests/mpi/test_mpi_round.py``).

A scenario is plain data: protocol, n clients, vector length, a fault schedule (the same
``Silent`` / ``Crash`` objects both runtimes apply through ``FaultyTransport``) and the outcome
it must produce — which clients survive, or that the round aborts.  Client inputs are the MPI
runner's deterministic synthetic updates, so both runtimes aggregate the same numbers and the
expected sum can be recomputed here.

Survivor rules the expectations encode: a client that goes silent or crashes before sending
its input (``PlainUpdate``; for SecAgg ``AdvertiseKeys``, ``EncryptedShares`` or
``MaskedInput``) is dropped; a SecAgg client that stops before ``UnmaskShares`` has its masked
input counted already and stays a survivor (the others' shares recover its self-mask).
Sizes stay small (n <= 8, d <= 2000) so an ``mpirun`` of each takes seconds.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from fedsecure.protocols.base import AggregationSpec
from fedsecure.runtime.faults import Crash, Fault, Silent
from fedsecure.runtime.mpi_config import MPIRoundConfig, plain_sum, synthetic_update


@dataclass(frozen=True)
class Scenario:
    name: str
    protocol: str
    n_clients: int
    dim: int
    faults: tuple[Fault, ...] = ()
    survivors: tuple[int, ...] | None = None  # None: every client
    aborts: bool = False
    max_weight: int = 1
    seed: int = 0
    deadline_s: float = 3.0  # real seconds under MPI; the simulation's clock is virtual
    backend: str | None = None  # optional module the protocol needs (skip with a reason)

    def __post_init__(self):
        if self.survivors is None and not self.aborts:
            object.__setattr__(self, "survivors", tuple(range(1, self.n_clients + 1)))

    def skip_reason(self) -> str | None:
        """Why this scenario cannot run here (an optional backend is missing), else None."""
        if self.backend is not None and importlib.util.find_spec(self.backend) is None:
            return f"{self.protocol} needs {self.backend}, which is not installed (extra: he)"
        return None

    @property
    def client_ids(self) -> range:
        return range(1, self.n_clients + 1)

    @property
    def dropped(self) -> tuple[int, ...]:
        return tuple(c for c in self.client_ids if c not in (self.survivors or ()))

    @property
    def crashes(self) -> tuple[int, ...]:
        return tuple(f.party for f in self.faults if isinstance(f, Crash))

    def round_config(self, **overrides) -> MPIRoundConfig:
        """The MPI runner's configuration (also the source of the synthetic inputs)."""
        options = {"protocol": self.protocol, "dim": self.dim, "seed": self.seed,
                   "max_weight": self.max_weight, "deadline_s": self.deadline_s,
                   "faults": self.faults}
        return MPIRoundConfig(**{**options, **overrides})

    def spec(self) -> AggregationSpec:
        return AggregationSpec(n_clients=self.n_clients, vector_length=self.dim,
                               max_weight=self.max_weight)

    def inputs(self) -> dict[int, tuple[np.ndarray, int]]:
        """client id -> (vector, weight): what each client rank feeds its party."""
        config = self.round_config()
        return {c: synthetic_update(config, c) for c in self.client_ids}

    def expected_sum(self) -> tuple[np.ndarray, float]:
        """Plain weighted sum and total weight over the expected survivors."""
        config = self.round_config()
        return plain_sum(lambda c: synthetic_update(config, c), self.survivors, config.clip)

    def cli_args(self) -> list[str]:
        """``fedsecure mpi-round`` options for this scenario."""
        args = ["--protocol", self.protocol, "--dim", str(self.dim), "--seed", str(self.seed),
                "--max-weight", str(self.max_weight), "--deadline", str(self.deadline_s)]
        for fault in self.faults:
            args += [f"--{type(fault).__name__.lower()}", f"{fault.party}:{fault.before}"]
        return args


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("plaintext-all", "plaintext", n_clients=4, dim=1000, max_weight=5),
    Scenario("plaintext-silent-and-crash", "plaintext", n_clients=6, dim=1000, max_weight=3,
             faults=(Silent(2, "PlainUpdate"), Crash(5, "PlainUpdate")),
             survivors=(1, 3, 4, 6)),
    Scenario("secagg-all", "secagg", n_clients=5, dim=2000, max_weight=4, seed=1),
    Scenario("secagg-masked-silent-unmask-crash", "secagg", n_clients=7, dim=2000, seed=2,
             faults=(Silent(3, "MaskedInput"), Crash(5, "UnmaskShares")),
             survivors=(1, 2, 4, 5, 6, 7)),
    Scenario("secagg-keys-silent-shares-crash", "secagg", n_clients=6, dim=500, seed=3,
             max_weight=2, faults=(Silent(2, "AdvertiseKeys"), Crash(4, "EncryptedShares")),
             survivors=(1, 3, 5, 6)),
    Scenario("secagg-below-threshold", "secagg", n_clients=4, dim=100, seed=4,
             faults=(Silent(1, "MaskedInput"), Silent(2, "MaskedInput")), aborts=True),
    Scenario("ckks-update-silent-and-crash", "ckks", n_clients=5, dim=1000, seed=5,
             max_weight=3, faults=(Silent(3, "CkksUpdate"), Crash(5, "CkksUpdate")),
             survivors=(1, 2, 4), backend="tenseal"),
)
