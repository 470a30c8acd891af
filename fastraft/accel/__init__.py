"""The accelerated primitives, and the one place that chooses compiled or pure.

Each primitive module exists twice with the same names, signatures, exceptions and results:
``fastraft.accel.compiled.<name>`` (Cython, built from ext/) and ``fastraft.accel.pure.<name>``
(the pure-Python twin, which is the spec). The set is chosen as a whole, never mixed, because
compiled modules share C-level types (a compiled log index holds compiled entries):

* ``FASTRAFT_PURE_PYTHON=1`` forces the twins;
* otherwise the compiled set, if every module of it imports;
* otherwise the twins, with a warning saying which import failed.

After import, ``fastraft.accel.<name>`` is the chosen module, and ``accelerated()`` says
whether it is the compiled set.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

__all__ = ["MODULES", "accelerated", "pure_forced", "load"]

#: The accelerated modules, in import order (later ones may cimport earlier ones).
MODULES: tuple[str, ...] = ("entry", "codec", "log_index", "progress")


def pure_forced() -> bool:
    """True when the environment asks for the pure-Python twins."""
    return os.environ.get("FASTRAFT_PURE_PYTHON", "") not in ("", "0")


def load(flavour: str) -> dict[str, ModuleType]:
    """Import every module of one flavour ("compiled" or "pure"); ImportError if one is missing."""
    if flavour not in ("compiled", "pure"):
        raise ValueError(f"flavour must be 'compiled' or 'pure', not {flavour!r}")
    return {name: importlib.import_module(f"{__name__}.{flavour}.{name}") for name in MODULES}


def _choose() -> tuple[dict[str, ModuleType], bool]:
    if pure_forced():
        return load("pure"), False
    try:
        return load("compiled"), True
    except ImportError as e:
        warnings.warn(
            f"fastraft: compiled core not available ({e}); using the pure-Python twins, "
            "which are several times slower. Reinstall with a C compiler to build it.",
            RuntimeWarning,
            stacklevel=3,
        )
        return load("pure"), False


_chosen, _accelerated = _choose()
globals().update(_chosen)


def accelerated() -> bool:
    """True only when every accelerated module in use is the compiled one."""
    return _accelerated
