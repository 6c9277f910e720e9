"""CKKS homomorphic averaging (TenSEAL), behind the one aggregation interface.

``make_aggregator("ckks", spec, preset="n8192", key_holder=1, key_model="holder",
signing_public_keys=None, client_signing_keys=None)``.

Theory of operation: clients encrypt w * clip(x) and w under a CKKS public key; the server
adds ciphertexts (CKKS is additively homomorphic) and only ever holds the public context; the
key holder (a client, default 1) made the key, decrypts the sum and hands the server the
plaintext aggregate -- so the server learns sum(w * x) and sum(w), as with SecAgg, and the
mean is their ratio.  Unlike SecAgg there is no recovery phase: a client that never sends is
simply absent from the sum.  Four phases: keys (X25519 advertisements), context (the key holder
seals each client's key material), updates, decryption; see ``protocols/ckks/SPEC.md`` for the
wire protocol and ``docs/ckks.md`` for parameters, key model and threat model.

Error: each decrypted coordinate of the mean is within :attr:`CkksAggregator.quantization_error`
of the mean of the clipped inputs (fails with probability < 2^-40 per coordinate); the total
weight is decoded exactly (it is an integer, rounded).
"""

from __future__ import annotations

from collections.abc import Mapping

from fedsecure.config import require
from fedsecure.hazmat.ckks import CkksParameters, require_backend
from fedsecure.hazmat.ckks import preset as named_preset
from fedsecure.messages import ENVELOPE_OVERHEAD_BYTES
from fedsecure.messages.ckks import MAX_CHUNKS
from fedsecure.protocols.base import (
    AggregationSpec,
    Aggregator,
    refuse_small_cohort,
    register_protocol,
)
from fedsecure.protocols.ckks.client import CkksClient
from fedsecure.protocols.ckks.keys import (
    KEY_MODELS,
    KeyHolderOnly,
    KeyModel,
    SharedSecretKey,
    SingleSecretKey,
)
from fedsecure.protocols.ckks.keys import (
    key_model as named_key_model,
)
from fedsecure.protocols.ckks.server import WEIGHT_TOLERANCE, CkksServer
from fedsecure.rng import DEFAULT_RNG, RandomSource


class CkksAggregator(Aggregator):
    """Makes the CKKS parties of one round.

    ``preset`` names a parameter set in ``fedsecure.hazmat.ckks.PRESETS`` ("n8192",
    "n8192-compact", "n16384"); ``parameters`` (a :class:`CkksParameters`) overrides it.
    ``key_holder`` is the client that makes the key and decrypts the sum.  ``key_model`` is a
    name in ``KEY_MODELS`` or a :class:`KeyModel`.  With ``signing_public_keys`` (client id ->
    Ed25519 public key, known to the server in advance) every client message must carry a
    valid signature; ``client_signing_keys`` (client id -> Ed25519 private key) are the keys
    of the clients this process runs.
    """

    name = "ckks"

    def __init__(self, spec: AggregationSpec, *, preset: str = "n8192",
                 parameters: CkksParameters | None = None, key_holder: int = 1,
                 key_model: str | KeyModel = "holder",
                 signing_public_keys: Mapping[int, bytes] | None = None,
                 client_signing_keys: Mapping[int, bytes] | None = None,
                 rng: RandomSource = DEFAULT_RNG):
        require_backend()
        super().__init__(spec, rng=rng)
        self.parameters = parameters if parameters is not None else named_preset(preset)
        self.key_model = named_key_model(key_model)
        require(key_holder in spec.client_ids, "key_holder", key_holder,
                f"must be a client id in 1..{spec.n_clients}")
        self.key_holder = key_holder
        refuse_small_cohort(spec)
        params, n = self.parameters, spec.n_clients
        largest = n * spec.max_weight * max(spec.clip, 1.0)
        require(largest < 2.0**params.headroom_bits, "parameters", params.describe(),
                f"n_clients x max_weight x max(clip, 1) = {largest:g} must stay below"
                f" 2^{params.headroom_bits}: choose a preset with a larger modulus or a smaller"
                " scale")
        require(n * params.error_bound < WEIGHT_TOLERANCE, "parameters", params.describe(),
                f"noise of a sum over {n} clients could hide the integer total weight")
        chunks = -(-(spec.vector_length + 1) // params.slots)
        require(chunks <= MAX_CHUNKS, "vector_length", spec.vector_length,
                f"needs {chunks} ciphertexts, more than {MAX_CHUNKS}")
        if signing_public_keys is not None:
            signing_public_keys = dict(signing_public_keys)
            require(set(signing_public_keys) == set(spec.client_ids)
                    and all(isinstance(k, bytes) and len(k) == 32
                            for k in signing_public_keys.values()),
                    "signing_public_keys", sorted(signing_public_keys),
                    f"must map every client id 1..{n} to a 32-byte Ed25519 public key")
        self.signing_public_keys = signing_public_keys
        self.client_signing_keys = dict(client_signing_keys or {})

    def client(self, client_id: int, *, rng: RandomSource | None = None,
               signing_key: bytes | None = None) -> CkksClient:
        self.check_client_id(client_id)
        if signing_key is None:
            signing_key = self.client_signing_keys.get(client_id)
        require(signing_key is not None or self.signing_public_keys is None, "signing_key",
                None, f"client {client_id} needs one: the server requires signed messages")
        return CkksClient(self, client_id, rng or self.rng, signing_key)

    def server(self, *, rng: RandomSource | None = None) -> CkksServer:
        return CkksServer(self)

    def max_message_bytes(self, *, to_server: bool) -> int:
        """From the parameters: a fresh ciphertext is two polynomials of N coefficients in at
        most L primes (8 bytes each); a context holds at most a public and a secret key.  The
        key holder's delivery carries one sealed context per client."""
        p, n = self.parameters, self.spec.n_clients
        polynomial = p.poly_modulus_degree * len(p.coeff_mod_bit_sizes) * 8
        ciphertexts = -(-(self.spec.vector_length + 1) // p.slots) * (2 * polynomial + 4096)
        context = 4 * polynomial + 65536
        if to_server:
            return ENVELOPE_OVERHEAD_BYTES + max(ciphertexts, (n + 1) * (context + 1024))
        return ENVELOPE_OVERHEAD_BYTES + max(ciphertexts + 5 * n, context + 1024)

    @property
    def quantization_error(self) -> float:
        """Per-coordinate bound on |decrypted mean - mean of the clipped inputs|.

        The sum over m survivors carries m independent fresh-encryption errors of standard
        deviation at most ``noise_std`` each; divided by the exact total weight W >= m, the
        mean's error has standard deviation <= noise_std / sqrt(m) <= noise_std, and
        ``error_bound`` is 7.2 of those.
        """
        return self.parameters.error_bound


register_protocol("ckks", CkksAggregator)

__all__ = [
    "KEY_MODELS",
    "CkksAggregator",
    "CkksClient",
    "CkksParameters",
    "CkksServer",
    "KeyHolderOnly",
    "KeyModel",
    "SharedSecretKey",
    "SingleSecretKey",
]
