"""Message body of the plaintext (insecure) baseline aggregator."""

from __future__ import annotations

from fedsecure.messages.envelope import ArrayPayload, Message


class PlainUpdate(Message, frozen=True):
    """Client -> server: the weighted update in the clear as float32 (baseline only: no privacy)."""

    weighted_update: ArrayPayload
    weight: float


PLAINTEXT_MESSAGES = (PlainUpdate,)
