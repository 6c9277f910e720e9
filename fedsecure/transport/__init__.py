"""Transports move opaque bytes between party ids: the interface (:class:`Transport`) and its
implementations (``memory``; ``mpi``, which needs the ``mpi`` extra and is imported on demand)."""

from fedsecure.transport.base import Transport

__all__ = ["Transport"]
