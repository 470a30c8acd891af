"""docs/getting-started.md shows code that the tests run: every python block whose first line
names a file (``# path/in/repo.py``) must be an excerpt of that file: its lines appear in it,
in order ("..." marks what the excerpt leaves out)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "getting-started.md"


def excerpts():
    text = DOC.read_text()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        first, _, body = block.partition("\n")
        assert first.startswith("# "), f"a python block does not name its file: {first!r}"
        yield first[2:].strip(), body


def test_every_python_block_is_an_excerpt_of_the_file_it_names():
    found = list(excerpts())
    assert len(found) >= 8
    for path, body in found:
        source = [line.strip() for line in (ROOT / path).read_text().splitlines()]
        at = 0
        for line in body.splitlines():
            want = line.strip()
            if not want or want == "...":
                continue
            try:
                at = source.index(want, at) + 1
            except ValueError:
                raise AssertionError(f"{path}: not found (in order): {want!r}") from None


def test_the_doc_names_the_files_that_run_the_cluster():
    text = DOC.read_text()
    for path in ("scripts/test-cluster.sh", "tests/test_cluster.py", "tests/kv/test_demo.py"):
        assert path in text and (ROOT / path).exists()
