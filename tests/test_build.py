"""The build in use is the one that was asked for (issue: both builds, no silent fallback)."""

import importlib
import importlib.machinery
import pathlib
import pkgutil
import subprocess
import sys

import fastraft
from fastraft import accel
from fastraft.accel import pure

EXT = pathlib.Path(__file__).resolve().parents[1] / "ext" / "fastraft" / "accel" / "compiled"


def compiled_sources():
    """The names of the compiled modules, one per .pyx (what setup.py builds)."""
    names = sorted(p.stem for p in EXT.glob("*.pyx"))
    assert names, f"no .pyx under {EXT}"
    return names


def test_compiled_core_in_use_unless_pure_forced():
    if accel.pure_forced():
        assert not fastraft.accelerated()
        for name in accel.MODULES:
            assert getattr(accel, name).__name__ == f"fastraft.accel.pure.{name}"
    else:
        assert fastraft.accelerated(), "the compiled core was expected but is not in use"
        for name in accel.MODULES:
            assert getattr(accel, name).__name__ == f"fastraft.accel.compiled.{name}"


def test_every_compiled_module_is_an_extension_unless_pure_forced():
    # The public modules import the parts they are split into (log_terms, quorum, frame...):
    # each part must be the built extension, not a leftover or a missing file.
    if accel.pure_forced():
        return
    for name in compiled_sources():
        mod = importlib.import_module(f"fastraft.accel.compiled.{name}")
        assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), (
            f"fastraft.accel.compiled.{name} is not the compiled extension: {mod.__file__}")


def test_compiled_and_pure_split_mirror_each_other():
    # The twin is the spec: every compiled module (a .pyx, or a .pxd of inline helpers alone)
    # has its pure twin, and no twin is alone.
    compiled = {p.stem for p in EXT.glob("*.pyx")} | {p.stem for p in EXT.glob("*.pxd")}
    twins = {m.name for m in pkgutil.iter_modules(pure.__path__)}
    assert twins == compiled


def test_both_flavours_importable_and_same_names():
    compiled, pure = accel.load("compiled"), accel.load("pure")
    for name in accel.MODULES:
        public_c = {n for n in dir(compiled[name]) if not n.startswith("_")}
        public_p = {n for n in dir(pure[name]) if not n.startswith("_")}
        missing = {n for n in public_p - public_c if not _is_import(pure[name], n)}
        assert not missing, f"{name}: compiled module lacks {sorted(missing)}"


def _is_import(mod, attr):
    obj = getattr(mod, attr)
    return getattr(obj, "__module__", mod.__name__) != mod.__name__ or type(obj).__name__ == "module"


def test_env_var_forces_twins_in_a_fresh_process():
    code = "import fastraft, sys; sys.exit(0 if fastraft.accelerated() is False else 1)"
    env = {"FASTRAFT_PURE_PYTHON": "1", "PATH": ""}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_entry_same_in_both_flavours():
    compiled, pure = accel.load("compiled"), accel.load("pure")
    for E in (compiled["entry"].Entry, pure["entry"].Entry):
        e = E(3, 7, 1, b"abc")
        assert (e.term, e.index, e.kind, e.payload) == (3, 7, 1, b"abc")
        assert e == E(3, 7, 1, b"abc") and e != E(3, 7, 1, b"abd")
        assert repr(e) == "Entry(term=3, index=7, kind=NORMAL, payload=b'abc')"
        try:
            e.term = 4
        except AttributeError:
            pass
        else:
            raise AssertionError("Entry must be immutable")
    assert compiled["entry"].Entry(1, 2, 0, b"") == pure["entry"].Entry(1, 2, 0, b"")
