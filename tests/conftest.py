"""Shared test setup.

The suite runs twice in CI: with the compiled core, and with FASTRAFT_PURE_PYTHON=1.
``tests/test_build.py`` fails when the compiled core was expected and is not in use.
Differential tests import both flavours directly (``fastraft.accel.load``), whatever the
environment chose, so both are compared in every run.
"""

import os

import hypothesis

# Bounded, reproducible property tests: CI derandomizes so a failure replays exactly.
hypothesis.settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
hypothesis.settings.register_profile("dev", max_examples=100, deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")
