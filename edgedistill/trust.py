"""Which code a checkpoint may run: the trust rule for factories recorded in checkpoints.

A checkpoint loads with ``weights_only=True``, so unpickling it runs no code; but an edgedistill
checkpoint names the factory that rebuilds its architecture (``package.module:function``) and
loading it calls that factory. A downloaded ``student.pt`` naming ``os:system`` must not run it.

A factory recorded in a checkpoint (or in its kwargs, e.g. a derived student's teacher or a Hugging
Face ``head``) is called only when it is:

- one of edgedistill's own model factories (``edgedistill.zoo.*`` and the few named in ``OWN``),
  resolved to an object defined in that module, so ``edgedistill.fileio:os.system`` is not "own";
- named by the user for this run (``teacher.model`` / ``student.model`` on the command line or in
  the config); or
- under a module the user trusts: ``--trust-factory MODULE`` (repeatable), the config's
  ``trust_factories`` list, or the Python API's ``trust_factories=`` parameter.

Anything else is a one-line refusal naming the factory and how to trust it, before anything is imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import re
from typing import Any, Callable, Iterable, Iterator, TypeVar

from edgedistill.errors import UserError

FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
ENTRY = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?")
T = TypeVar("T")
OWN_PREFIX = "edgedistill.zoo."  # the package's model zoo: every public callable there builds a model
HF_PREFIX = "hf:"  # a local Hugging Face folder: weights and config, no code (never trust_remote_code)
OWN = frozenset({"edgedistill.distillation.students:derived", "edgedistill.huggingface:mean_pool_head"})

_trusted: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("edgedistill_trusted", default=frozenset())


def is_own(spec: str) -> bool:
    """True for edgedistill's own model factories (the attribute must be defined in the module it names)."""
    if spec in OWN:
        return True
    module_name, _, attr = spec.partition(":")
    if not module_name.startswith(OWN_PREFIX) or "." in attr or attr.startswith("_"):
        return False
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return getattr(getattr(module, attr, None), "__module__", None) == module_name


def _covers(entry: str, spec: str) -> bool:
    """``entry`` (a module, or an exact ``module:function``) covers ``spec``."""
    if ":" in entry:
        return entry == spec
    module = spec.partition(":")[0]
    return module == entry or module.startswith(entry + ".")


def is_trusted(spec: str, trusted: Iterable[str] | None = None) -> bool:
    """Whether a factory recorded in a checkpoint may be called (see the module docstring)."""
    entries = _trusted.get() if trusted is None else frozenset(trusted)
    return is_own(spec) or any(_covers(entry, spec) for entry in entries)


def recorded_factories(factory: str, kwargs: Any) -> list[str]:
    """The checkpoint's factory and every factory-looking string in its kwargs (nested ones run too)."""
    found = [] if factory.startswith(HF_PREFIX) or ":" not in factory else [factory]  # a folder is data, not code
    stack = [kwargs]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, str) and FACTORY.fullmatch(value) and not value.startswith(HF_PREFIX):
            found.append(value)
    return found


def check_checkpoint(source: Any, factory: str, kwargs: Any) -> None:
    """Refuse (one line) a checkpoint whose factories are not trusted; nothing is imported for them."""
    for spec in recorded_factories(factory, kwargs):
        if not is_trusted(spec):
            module = spec.partition(":")[0]
            raise UserError(f"checkpoint {source} names factory {spec!r}, which is not edgedistill's own and was "
                            f"not named for this run; refusing to call it (if you trust it: --trust-factory {module}, "
                            f"or trust_factories = [\"{module}\"] in the config)")


def trusted_for(config: Any) -> frozenset[str]:
    """What a config trusts: its ``trust_factories`` and the factories it names as teacher and student."""
    for entry in config.trust_factories:
        if not ENTRY.fullmatch(entry):
            raise UserError(f"trust_factories: {entry!r} is not a module name like mypkg.models "
                            f"(or mypkg.models:function)")
    named = [ref.model for ref in (config.teacher, config.student) if FACTORY.fullmatch(ref.model)]
    return frozenset([*config.trust_factories, *named])


def within_config(stage: Callable[..., T]) -> Callable[..., T]:
    """Run a stage ``stage(config, ...)`` trusting what its config trusts (see ``trusted_for``)."""

    @functools.wraps(stage)
    def run(config: Any, *args: Any, **kwargs: Any) -> T:
        with trusting(trusted_for(config)):
            return stage(config, *args, **kwargs)

    return run


@contextlib.contextmanager
def trusting(entries: Iterable[str]) -> Iterator[None]:
    """Within the block, checkpoints may also call factories covered by ``entries``."""
    token = _trusted.set(_trusted.get() | frozenset(entries))
    try:
        yield
    finally:
        _trusted.reset(token)


def current() -> list[str]:
    """The entries trusted now (passed on to helper processes that load checkpoints)."""
    return sorted(_trusted.get())
