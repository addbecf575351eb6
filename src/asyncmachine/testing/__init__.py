"""Test your machines: invariant checks, log capture, strategies, fixtures.

- `check_invariants`, `InvariantChecker` and `run_mutations` check what must
  hold for every schema (ticks, requirements, exclusive states).
- `LogCapture` is a `logger=` sink that keeps log lines for assertions.
- `asyncmachine.testing.strategies` has hypothesis strategies for random
  schemas and mutation sequences (needs the ``testing`` extra).
- The pytest plugin (an entry point, loaded automatically) provides the
  `am_machine` and `am_log` fixtures (see `machine_factory`).

Importing this package does not import hypothesis or pytest.
"""

from ._check import MUTATION_KINDS as MUTATION_KINDS
from ._check import InvariantChecker as InvariantChecker
from ._check import InvariantError as InvariantError
from ._check import MutationStep as MutationStep
from ._check import check_invariants as check_invariants
from ._check import run_mutations as run_mutations
from ._fixtures import MachineFactory as MachineFactory
from ._fixtures import machine_factory as machine_factory
from ._log import LogCapture as LogCapture

__all__ = [
    "MUTATION_KINDS",
    "InvariantChecker",
    "InvariantError",
    "LogCapture",
    "MachineFactory",
    "MutationStep",
    "check_invariants",
    "machine_factory",
    "run_mutations",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _name, _obj
