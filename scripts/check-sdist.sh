#!/usr/bin/env bash
# The release path, bounded: build the sdist, install it into a fresh venv (pip builds the
# wheel from the sdist: Cython translates the .pyx files it carries, the C compiler builds the
# core), check that the installed fastraft runs on its compiled core, and run a small subset
# of the sdist's own tests against the installed package (not the source tree).
# Usage: scripts/check-sdist.sh [WORKDIR]   (default: a temporary directory, removed after)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
python -m build --sdist --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/fastraft-*.tar.gz)
tar tzf "$sdist" >"$work/sdist-files.txt"
if grep -E '\.(c|so)$' "$work/sdist-files.txt"; then
    echo "the sdist must carry no generated C and no binaries" >&2; exit 1
fi
# every Cython source of the tree (each .pyx is an extension, each .pxd declares what the others
# cimport) is in the sdist: a missing one would build a wheel without part of its core
while IFS= read -r src; do
    grep -q "/$src\$" "$work/sdist-files.txt" || { echo "the sdist lacks $src" >&2; exit 1; }
done < <(find ext -name '*.pyx' -o -name '*.pxd')
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$sdist[test,kv]"
mkdir -p "$work/src" && tar xzf "$sdist" -C "$work/src"
cd "$work"  # away from the source tree: the installed package is the one imported
"$work/venv/bin/python" - <<'PY'
import fastraft, sys
print("installed", fastraft.__version__, "at", fastraft.__file__, "accelerated:", fastraft.accelerated())
sys.exit(0 if fastraft.accelerated() and "site-packages" in fastraft.__file__ else 1)
PY
tests=$(ls -d "$work"/src/fastraft-*/tests)
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$tests/test_build.py" \
    "$tests/accel/test_codec_units.py" "$tests/runtime/test_runtime_basics.py" \
    "$tests/kv/test_ops.py"
