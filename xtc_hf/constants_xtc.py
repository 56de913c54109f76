# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""The settings XTC's model config and its quantization config both validate against.

Its own file so that ``configuration_xtc`` (which registers the quantizer) and ``quantizer_xtc`` both import it and
neither imports the other's module in a circle. It travels with saved checkpoints (``trust_remote_code``) and imports
nothing.

Example:
    >>> from xtc_hf.constants_xtc import WEIGHT_BITS
    >>> 1 in WEIGHT_BITS
    True
"""

WEIGHT_BITS = (1, 2, 4, 8, 32)
ACTIVATION_BITS = (8, 32)
GRANULARITIES = ("matrix", "row")
QUANT_METHOD = "xtc"  # `quant_method` of the `quantization_config` in config.json

__all__ = ["ACTIVATION_BITS", "GRANULARITIES", "QUANT_METHOD", "WEIGHT_BITS"]
