"""padfree: a length-aware CPU Transformer encoder.

Padded positions are never computed: every kernel runs on the valid tokens only.
Select kernels with the environment variable ``PADFREE_ISA=scalar|avx2|avx512``.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

_logger = logging.getLogger("padfree")
_logger.addHandler(logging.NullHandler())

try:
    from . import _core
except ImportError as error:  # a bad PADFREE_ISA surfaces here with its own message
    raise ImportError(f"padfree could not load its C++ core: {error}") from error

from ._attention import attention
from ._bert import BertModel
from ._dense import Linear, layer_norm, linear
from ._encoder import Encoder, EncoderLayer
from ._info import cpu_info
from ._sentence import SentenceEncoder
from ._softmax import masked_softmax

__all__ = [
    "__version__",
    "BertModel",
    "Linear",
    "SentenceEncoder",
    "attention",
    "layer_norm",
    "linear",
    "Encoder",
    "EncoderLayer",
    "cpu_info",
    "masked_softmax",
]

if _logger.isEnabledFor(logging.DEBUG):  # cpu_info() builds a dict: only when it is shown
    _logger.debug(
        "padfree %s: ISA %s, %d OpenMP threads",
        __version__,
        _core.get_isa(),
        _core.cpu_info()["num_threads"],
    )
