"""Build the accelerated core: every ext/fastraft/**/*.pyx becomes an extension module at the
same dotted path inside the fastraft package (ext/fastraft/accel/compiled/codec.pyx ->
fastraft.accel.compiled.codec). The .pxd files beside them are found through include_path.

One rule for the generated C (MANIFEST.in): it is never shipped. Cython is a build
requirement, so a build from the tree or from the sdist translates the .pyx files afresh.
A missing .pyx is an error, not a wheel without its core: a release must carry the core."""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
EXT_ROOT = Path("ext")


def extensions():
    out = []
    for pyx in sorted((HERE / EXT_ROOT).rglob("*.pyx")):
        rel = pyx.relative_to(HERE)
        dotted = ".".join(rel.relative_to(EXT_ROOT).with_suffix("").parts)
        out.append(Extension(dotted, [str(rel)], extra_compile_args=["-O3"]))
    if not out:
        raise SystemExit(f"setup.py: no .pyx sources under {HERE / EXT_ROOT}: "
                         "the accelerated core cannot be built")
    return out


setup(
    ext_modules=cythonize(
        extensions(),
        include_path=[str(EXT_ROOT)],
        compiler_directives={"language_level": "3", "embedsignature": True},
    ),
)
