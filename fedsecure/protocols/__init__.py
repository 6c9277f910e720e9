"""Protocol modules: sans-I/O state machines behind the one aggregation interface (``base``).

Importing this package registers the built-in protocols with ``make_aggregator``.
"""

from fedsecure.protocols import (
    ckks,  # noqa: F401
    grouped,  # noqa: F401
    plaintext,  # noqa: F401
    robust,  # noqa: F401
    secagg,  # noqa: F401
)
