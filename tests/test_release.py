"""What a release carries: one version (the installed metadata), the typing marker, the
license, a CHANGELOG whose format versions are the ones the code writes, and a fallback
warning that says why the compiled core did not load and what to do."""

import pathlib
import re
import subprocess
import sys
from importlib.metadata import metadata, version

import pytest

import fastraft

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_one_version_from_the_metadata():
    assert fastraft.__version__ == version("fastraft")
    meta = metadata("fastraft")
    assert meta["License-Expression"] == "Apache-2.0"
    assert any(c.startswith("Programming Language :: Python :: 3.13")
               for c in meta.get_all("Classifier"))
    assert meta.get_all("Project-URL")
    # exceptiongroup is imported on 3.10 (the builtin from 3.11): declared for that Python
    assert any(r.startswith("exceptiongroup") and "python_version < \"3.11\"" in r
               for r in meta.get_all("Requires-Dist"))


def test_typed_package_and_license():
    assert (pathlib.Path(fastraft.__file__).parent / "py.typed").exists()
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def _changelog_formats():
    text = (ROOT / "CHANGELOG.md").read_text()
    table = text.split("## Format versions", 1)[1]
    rows = re.findall(r"^\| ([^|]+) \| ([^|]+) \| `([\w.]+)`", table, flags=re.M)
    return {where: version.strip().strip("`") for _, version, where in rows}


def test_changelog_states_the_format_versions_the_code_writes():
    from fastraft import codec
    from fastraft.kv import lmdb_state_machine, snapshot_format
    from fastraft.storage import lmdb_log, records

    stated = _changelog_formats()
    actual = {
        "fastraft.codec.WIRE_VERSION": codec.WIRE_VERSION,
        "fastraft.storage.lmdb_log.FORMAT_VERSION": lmdb_log.FORMAT_VERSION,
        "fastraft.storage.records.RECORD_VERSION": records.RECORD_VERSION,
        "fastraft.kv.lmdb_state_machine.FORMAT_VERSION": lmdb_state_machine.FORMAT_VERSION,
        "fastraft.kv.snapshot_format.FORMAT_VERSION": snapshot_format.FORMAT_VERSION,
    }
    assert set(stated) == set(actual)
    for name, value in actual.items():
        shown = value.decode() if isinstance(value, bytes) else str(value)
        assert stated[name] == shown, f"CHANGELOG says {name} is {stated[name]}, the code {shown}"


COMPILED_SOURCES = sorted(
    p.stem for p in (ROOT / "ext" / "fastraft" / "accel" / "compiled").glob("*.pyx"))


@pytest.mark.parametrize("missing", COMPILED_SOURCES)
def test_fallback_warning_names_the_import_error_and_what_to_do(missing):
    # Any one compiled module missing (a public one or a part another cimports) means the
    # whole compiled set is not used, and the warning names the module that failed.
    code = (f"import sys, warnings; sys.modules['fastraft.accel.compiled.{missing}'] = None\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastraft\n"
            "print(fastraft.accelerated()); print(w[0].message)")
    env = {"PATH": "", "FASTRAFT_PURE_PYTHON": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    accelerated, message = out.split("\n", 1)
    assert accelerated == "False"
    assert "Error:" in message and f"fastraft.accel.compiled.{missing}" in message
    assert "pip install" in message and "FASTRAFT_PURE_PYTHON=1" in message
