"""What users import in their own tests.

``StorageSuite`` / ``DurableStorageSuite``: the storage conformance suite, as a pytest base
class (see ``fastraft.testing.storage_suite`` for the few lines it takes), and
``run_storage_suite`` for running it without pytest. ``free_ports``: loopback ports for
nodes started as separate processes.
"""

from . import durable_cases, log_cases, misuse_cases, sm_cases, startup_cases  # noqa: F401  (they register the cases)
from .ports import free_ports
from .storage_suite import (
    ANY,
    CASES,
    DURABLE_CASES,
    DurableStorageSuite,
    StorageSuite,
    SuiteContext,
    _install,
    run_storage_suite,
)

_install()

__all__ = ["StorageSuite", "DurableStorageSuite", "SuiteContext", "ANY", "CASES",
           "DURABLE_CASES", "run_storage_suite", "free_ports"]
