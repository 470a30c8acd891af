"""PySyncObj in a venv of its own beside the project's (so its dependencies never mix with
fastraft's): made once under the user's cache folder, reused by later runs.

``python_for_pysyncobj()`` returns (the venv's python, PySyncObj's version), or raises
``PeerMissing`` saying why (no network for pip, no venv module, ...).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv

PYSYNCOBJ = "pysyncobj==0.3.17"  # the release the published PySyncObj figures are for


class PeerMissing(Exception):
    pass


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastraft-bench")


def python_for_pysyncobj(timeout_s: float = 300.0) -> tuple[str, str]:
    root = os.path.join(cache_dir(), "pysyncobj-venv")
    python = os.path.join(root, "bin", "python")
    probe = [python, "-c", "import pysyncobj, importlib.metadata as m; print(m.version('pysyncobj'))"]
    try:
        if os.path.exists(python):
            out = subprocess.run(probe, capture_output=True, text=True, timeout=60)
            if out.returncode == 0:
                return python, out.stdout.strip()
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        pip = subprocess.run([python, "-m", "pip", "install", "-q", PYSYNCOBJ],
                             capture_output=True, text=True, timeout=timeout_s)
        if pip.returncode != 0:
            raise PeerMissing(f"pip install {PYSYNCOBJ} failed: "
                              f"{(pip.stderr or pip.stdout).strip().splitlines()[-1:]}")
        out = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise PeerMissing("pysyncobj does not import in its venv")
        return python, out.stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise PeerMissing(f"could not make the PySyncObj venv: {e}") from None


if __name__ == "__main__":
    print(python_for_pysyncobj())
    sys.exit(0)
