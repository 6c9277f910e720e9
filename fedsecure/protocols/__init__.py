"""Protocol modules: sans-I/O state machines behind the one aggregation interface (``base``).

Importing this package registers the built-in protocols with ``make_aggregator``.
"""

from fedsecure.protocols import plaintext  # noqa: F401
from fedsecure.protocols import secagg  # noqa: F401
from fedsecure.protocols import ckks  # noqa: F401
