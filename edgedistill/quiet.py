"""Silence third-party noise (Python warnings, C++ prints to fd 1/2) unless the user asked for -v."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator

_verbose = False
_NOISY_LOGGERS = ("torch", "torchao", "executorch", "coremltools", "absl", "tensorflow", "onnxruntime", "root")


def set_verbose(verbose: bool) -> None:
    """Let third-party output through (``-v``) or keep it quiet (default)."""
    global _verbose
    _verbose = verbose
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)
    # edgedistill speaks through logging, never `warnings`: every Python warning is third-party noise
    # (torch's _pytree deprecations during an iOS validate, protobuf, ...) shown only with -v
    warnings.simplefilter("default" if verbose else "ignore")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow warnings and native stdout/stderr writes; replay captured stderr if the block raises."""
    if _verbose:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            sink.seek(0)
            logging.getLogger("edgedistill").debug(sink.read().decode(errors="replace"))
            raise
        else:
            _restore(saved)


def _restore(saved: tuple[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    os.close(saved[0])
    os.close(saved[1])
