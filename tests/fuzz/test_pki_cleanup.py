"""The fuzz targets' throwaway TLS certificates (``peer_targets.pki``) live in a temporary
folder made once per process: it must be gone when the process exits, or every fuzzing and
test process leaves one behind."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_pki_folder_is_removed_when_the_process_exits(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = ("import os, peer_targets\n"
            "tls = peer_targets.pki()[0]\n"
            "assert os.path.exists(tls.ca_file)\n"
            "print(os.path.dirname(tls.ca_file))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=HERE, env=dict(os.environ, TMPDIR=str(tmp)),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    folder = out.stdout.strip()
    assert os.path.dirname(folder) == str(tmp), folder  # made under TMPDIR
    assert os.listdir(tmp) == [], os.listdir(tmp)
