"""The README's embedding example runs as written (on free ports) and prints the state
machine's answer."""

import re
import subprocess
import sys
from pathlib import Path

from fastraft.testing import free_ports

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_embedding_example_runs(tmp_path):
    code = _python_blocks()[0]
    assert "open_raft" in code and "127.0.0.1:22001" in code
    for i, port in enumerate(free_ports(3), start=1):
        code = code.replace(f"127.0.0.1:2200{i}", f"127.0.0.1:{port}")
    script = tmp_path / "embed.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'value': '1'}"


def test_readme_storage_suite_example_is_importable():
    code = _python_blocks()[1]
    namespace: dict = {}
    exec(compile(code, "README", "exec"), namespace)
    import fastraft.testing

    assert issubclass(namespace["TestMyStores"], fastraft.testing.StorageSuite)
