"""Built-in model factories (``edgedistill.zoo.<name>:<function>``) used by the demo and tests."""
