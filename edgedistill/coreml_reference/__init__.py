"""A reference evaluator for Core ML ML Programs, so a ``.mlpackage`` can be checked numerically where
Apple's runtime does not exist (Linux CI).

The saved package is loaded back with coremltools' own MIL loader (``loader.py``) and executed op by op
in numpy/PyTorch following the MIL op definitions (``ops_*.py``), emulating the precision the program
declares: every fp16 tensor is rounded to fp16 at the op boundary (``evaluator.py``). Quantized weights
are decoded from their stored form (``ops_quant.py``). An op without an implementation here is never
skipped: loading raises ``CannotCheck`` ("cannot check: op X").

It is a reference for the program's arithmetic, not Apple's runtime: reports label it so.
"""

from edgedistill.coreml_reference.loader import CannotCheck, LABEL

__all__ = ["CannotCheck", "LABEL"]
