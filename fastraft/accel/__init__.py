"""The accelerated primitives, and the one place that chooses compiled or pure.

Each primitive module exists twice with the same names, signatures, exceptions and results:
``fastraft.accel.compiled.<name>`` (Cython, built from ext/) and ``fastraft.accel.pure.<name>``
(the pure-Python twin, which is the spec). The set is chosen as a whole, never mixed, because
compiled modules share C-level types (a compiled log index holds compiled entries). A module
may be built from parts of one concept each, twinned alike and imported by it (log_index:
log_terms, log_cache; progress: members, quorum; codec: frame, codec_entries), so a missing
compiled part fails its module's import and the set falls back as a whole:

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the chosen modules share the twins' API: type-check against the spec
    from .pure import codec, entry, log_index, progress

__all__ = ["MODULES", "accelerated", "pure_forced", "load", "fallback_message"]

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


def fallback_message(error: ImportError) -> str:
    """The warning given when the compiled core does not import: why, and what to do."""
    return (
        f"fastraft: the compiled core did not load ({type(error).__name__}: {error}); using the "
        "pure-Python twins, several times slower. If this is a source tree, build it in place "
        "(pip install -e . or python setup.py build_ext --inplace); otherwise reinstall a "
        "wheel for this platform (pip install --force-reinstall --only-binary fastraft "
        "fastraft) or build one from the sdist with Cython and a C compiler "
        "(pip install --no-binary fastraft fastraft). FASTRAFT_PURE_PYTHON=1 silences this "
        "by choosing the twins on purpose."
    )


def _choose() -> tuple[dict[str, ModuleType], bool]:
    if pure_forced():
        return load("pure"), False
    try:
        return load("compiled"), True
    except ImportError as e:
        warnings.warn(fallback_message(e), RuntimeWarning, stacklevel=3)
        return load("pure"), False


_chosen, _accelerated = _choose()
globals().update(_chosen)


def accelerated() -> bool:
    """True only when every accelerated module in use is the compiled one."""
    return _accelerated
