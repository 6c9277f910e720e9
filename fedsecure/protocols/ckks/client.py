"""CKKS client (and key holder): one round of homomorphic averaging, sans-I/O.

Theory of operation (client c, key holder h, key model K; see ``protocols/ckks/SPEC.md``):

0. ``start``: draw a fresh X25519 key pair; send CkksAdvertise(public key).
1. Key holder only, on CkksKeyRequest (the roster of clients that advertised, h included):
   make a fresh CKKS key (K.make_keys), seal K.material_for(c) for every roster client c and
   send CkksKeyDelivery(public context, sealed materials).  The secret key never leaves h
   except inside a sealed material that K gives to a client.
2. On CkksClientKey: open the sealed material (AES-GCM, associated data binding session,
   round, h and c), load the context (K.open_material checks it is what K promises), encrypt
   w * clip(x) followed by w in ceil((d+1)/(N/2)) ciphertexts and send CkksUpdate with the
   context's fingerprint.  A client that may not decrypt is done.
3. Decryptors only (h for the built-in models), on CkksDecryptRequest: refuse a sum over fewer
   than ``min_clients`` survivors or under another context (UnsafeRequest / IntegrityError),
   else send CkksDecryption(K.decrypt_share(sum)).  A decryptor answers once per round.

Every message to the server is signed when the client has a signing key.  Anything not legal
in the current phase, or failing a check, aborts this client (an event, never an exception
from ``receive``).
"""

from __future__ import annotations

import msgspec
import numpy as np

from fedsecure.errors import (
    InsufficientParticipants,
    IntegrityError,
    MalformedMessage,
    UnsafeRequest,
)
from fedsecure.hazmat import agree, agree_many, generate_keypair, seal, unseal
from fedsecure.hazmat.agreement import KeyPair
from fedsecure.hazmat.ckks import PublicContext
from fedsecure.messages import SERVER_ID, ArrayPayload
from fedsecure.messages.ckks import (
    CkksAdvertise,
    CkksClientKey,
    CkksDecryption,
    CkksDecryptRequest,
    CkksKeyDelivery,
    CkksKeyMaterial,
    CkksKeyRequest,
    CkksSealedKey,
    CkksUpdate,
)
from fedsecure.protocols.ckks import wire
from fedsecure.protocols.phased import PhasedClient

_MATERIAL_DECODER = msgspec.msgpack.Decoder(CkksKeyMaterial)
_MATERIAL_ENCODER = msgspec.msgpack.Encoder()


class CkksClient(PhasedClient):
    STATE = {**PhasedClient.STATE,  # what snapshot() keeps (protocols/state.py)
             "_encryption": KeyPair | None, "_ckks": PublicContext | None}
    REBUILT = PhasedClient.REBUILT | {"signing_key", "is_key_holder", "_decrypts"}

    def __init__(self, aggregator, client_id: int, rng, signing_key: bytes | None):
        super().__init__(aggregator, client_id)
        self.rng = rng
        self.signing_key = signing_key
        self.context = wire.round_context(aggregator.session, aggregator.spec.round)
        self.is_key_holder = client_id == aggregator.key_holder
        self._decrypts = aggregator.key_model.may_decrypt(client_id, aggregator.key_holder)
        self._encryption = None
        self._ckks = None  # hazmat.ckks.PublicContext (or SecretContext) once keyed
        handlers = {"advertised": {CkksClientKey: "_on_client_key"}}
        if self.is_key_holder:
            handlers = {"advertised": {CkksKeyRequest: "_on_key_request"},
                        "delivered": {CkksClientKey: "_on_client_key"}}
        if self._decrypts:
            handlers["updated"] = {CkksDecryptRequest: "_on_decrypt_request"}
        self.HANDLERS = handlers  # this client's role decides what it waits for

    # ------------------------------------------------------------------ caller API
    def _begin(self) -> None:
        self._encryption = generate_keypair(self.rng)
        self._send(CkksAdvertise(self._encryption.public))
        self._enter("advertised")

    # ------------------------------------------------------------------ handlers
    def _on_key_request(self, body: CkksKeyRequest) -> None:
        spec, model, holder = self.agg.spec, self.agg.key_model, self.party_id
        roster = {}
        for entry in body.entries:
            if entry.client not in spec.client_ids or entry.client in roster:
                raise MalformedMessage(f"roster entry for client {entry.client}", SERVER_ID)
            roster[entry.client] = entry.encryption_public_key
        if roster.get(holder) != self._encryption.public:
            raise IntegrityError("roster does not carry our own public key", SERVER_ID)
        if len(roster) < spec.min_clients:
            raise InsufficientParticipants("key roster", remaining=len(roster),
                                           threshold=spec.min_clients)
        keys = model.make_keys(self.agg.parameters)
        secrets = agree_many(self._encryption.private, list(roster.values()))
        sealed = []
        for client, secret in zip(roster, secrets):
            material = CkksKeyMaterial(model.material_for(keys, client, holder))
            key = wire.material_key(secret, self.context)
            ad = wire.material_associated_data(self.context, holder, client)
            sealed.append(CkksSealedKey(client, seal(key, _MATERIAL_ENCODER.encode(material),
                                                     ad, self.rng)))
        self._send(CkksKeyDelivery(keys.public_context, sealed))
        self._enter("delivered")

    def _on_client_key(self, body: CkksClientKey) -> None:
        holder = self.agg.key_holder
        key = wire.material_key(agree(self._encryption.private, body.key_holder_public_key),
                                self.context)
        ad = wire.material_associated_data(self.context, holder, self.party_id)
        try:
            plaintext = unseal(key, body.sealed, ad)
        except IntegrityError as exc:
            raise IntegrityError(f"key material: {exc}", holder) from None
        try:
            material = _MATERIAL_DECODER.decode(plaintext)
        except msgspec.DecodeError as exc:
            raise MalformedMessage(f"key material: {exc}", holder) from None
        self._ckks = self.agg.key_model.open_material(
            material.context, self.agg.parameters, self.party_id, holder)
        vector, weight = self._take_input()
        values = np.empty(self.agg.spec.vector_length + 1)
        np.multiply(vector, weight, out=values[:-1])
        values[-1] = weight
        self._send(CkksUpdate(self._ckks.fingerprint, self._ckks.encrypt(values)))
        if self._decrypts:
            self._enter("updated")
        else:
            self._ckks = None
            self._enter("done")

    def _on_decrypt_request(self, body: CkksDecryptRequest) -> None:
        spec = self.agg.spec
        survivors = set(body.survivors)
        if len(survivors) != len(body.survivors) or not survivors <= set(spec.client_ids):
            raise MalformedMessage("decryption request names unknown or repeated clients",
                                   SERVER_ID)
        if len(survivors) < spec.min_clients:
            raise UnsafeRequest(f"asked to decrypt a sum over {len(survivors)} clients, fewer"
                                f" than min_clients={spec.min_clients}", SERVER_ID)
        if body.context_fingerprint != self._ckks.fingerprint:
            raise IntegrityError("decryption request under another context", SERVER_ID)
        try:
            share = self.agg.key_model.decrypt_share(self._ckks, body.ciphertexts,
                                                     spec.vector_length + 1)
        except MalformedMessage as exc:
            raise MalformedMessage(str(exc), SERVER_ID) from None
        self._send(CkksDecryption(ArrayPayload.pack(share)))
        self._finish(survivors)

    # ------------------------------------------------------------------ helpers
    def _send(self, body) -> None:
        envelope = self.agg.envelope(self.party_id, SERVER_ID, body)
        if self.signing_key is not None:
            envelope = wire.sign_envelope(envelope, self.signing_key)
        self._outbox.append(envelope)

    def _forget_secrets(self) -> None:
        self._ckks = None
        self._input = None
