"""The one exception hierarchy of fedsecure.

::

    FedSecureError
    ├─ ConfigurationError (also ValueError)   bad parameters, named with the value seen
    ├─ BackendUnavailable (also ImportError)  optional dependency missing, says which extra
    ├─ ProtocolError
    │  ├─ LocalProtocolError                  caller misuse (wrong phase, input set twice)
    │  │  └─ InvalidInput (also ValueError)   NaN/Inf, wrong shape/dtype/weight, before any send
    │  └─ RemoteProtocolError                 a peer misbehaved (``.sender``)
    │     ├─ MalformedMessage                 bytes that do not decode / fields out of range
    │     ├─ UnexpectedMessage                a message not legal in the current phase
    │     ├─ IntegrityError                   AEAD / signature / share-consistency failure
    │     └─ UnsafeRequest                    a request an honest party must refuse
    ├─ ProtocolAborted
    │  └─ InsufficientParticipants            fewer survivors than the threshold
    └─ PrivacyBudgetExceeded

A misbehaving *client* is handled by the server as that client's dropout; the server aborts
only when fewer than the threshold remain.  A misbehaving *server* makes an honest client
abort its participation.
"""

from __future__ import annotations


class FedSecureError(Exception):
    """Base class of every error raised by fedsecure."""


class ConfigurationError(FedSecureError, ValueError):
    """A parameter is out of range or inconsistent; the message names the option and value."""


class BackendUnavailable(FedSecureError, ImportError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"{module} is not installed; install it with: pip install 'fedsecure[{extra}]'"
        )
        self.module = module
        self.extra = extra


class ProtocolError(FedSecureError):
    """Something went wrong in a protocol exchange."""


class LocalProtocolError(ProtocolError):
    """The caller misused a party object (wrong phase, input set twice, ...)."""


class InvalidInput(LocalProtocolError, ValueError):
    """A client's input vector or weight is unusable (NaN/Inf, shape, dtype, range)."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something a correct peer never sends. ``sender`` names it (None if unknown)."""

    def __init__(self, message: str, sender: int | None = None):
        super().__init__(message if sender is None else f"party {sender}: {message}")
        self.sender = sender


class MalformedMessage(RemoteProtocolError):
    """Bytes that do not decode to a valid message, or fields out of range."""


class UnexpectedMessage(RemoteProtocolError):
    """A well-formed message that is not legal in the receiver's current phase."""


class IntegrityError(RemoteProtocolError):
    """Authentication failed: AEAD tag, signature, or a reconstructed secret that does not match."""


class UnsafeRequest(RemoteProtocolError):
    """A request an honest party must refuse (e.g. both shares of one peer)."""


class ProtocolAborted(FedSecureError):
    """The round cannot complete."""


class InsufficientParticipants(ProtocolAborted):
    """Fewer parties remain than the threshold needs."""

    def __init__(self, message: str, *, remaining: int, threshold: int):
        super().__init__(f"{message}: {remaining} remain, threshold is {threshold}")
        self.remaining = remaining
        self.threshold = threshold


class PrivacyBudgetExceeded(FedSecureError):
    """Running another step would spend more privacy budget than allowed."""


__all__ = [
    "FedSecureError",
    "ConfigurationError",
    "BackendUnavailable",
    "ProtocolError",
    "LocalProtocolError",
    "InvalidInput",
    "RemoteProtocolError",
    "MalformedMessage",
    "UnexpectedMessage",
    "IntegrityError",
    "UnsafeRequest",
    "ProtocolAborted",
    "InsufficientParticipants",
    "PrivacyBudgetExceeded",
]
