"""The build in use is the one that was asked for (issue: both builds, no silent fallback)."""

import subprocess
import sys

import fastraft
from fastraft import accel


def test_compiled_core_in_use_unless_pure_forced():
    if accel.pure_forced():
        assert not fastraft.accelerated()
        for name in accel.MODULES:
            assert getattr(accel, name).__name__ == f"fastraft.accel.pure.{name}"
    else:
        assert fastraft.accelerated(), "the compiled core was expected but is not in use"
        for name in accel.MODULES:
            assert getattr(accel, name).__name__ == f"fastraft.accel.compiled.{name}"


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
