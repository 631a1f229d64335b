"""cnf-rs: continuous normalizing flows and ODE solvers on cnf's Rust engine.

- :class:`CNFDensity`: a scikit-learn density estimator (``fit``, ``score_samples``,
  ``score``, ``sample``) with torch.distributions-style aliases (``log_prob``,
  ``sample((n,))``); picklable, and ``save``/``load`` read and write the ``cnf`` command's
  model folders.
- :func:`solve`: ``scipy.integrate.solve_ivp``-like solves with a Python right-hand side.
- :func:`kernel`: the matrix-product path of this process, ``"avx512"`` or ``"generic"``
  (``CNF_KERNEL=generic`` in the environment forces the portable one).
- :class:`SolverError`: raised when an ODE solve fails or training diverges; bad input raises
  ``ValueError`` with the ``cnf`` command's one-line message.
"""

import os as _os

from . import _native
from ._native import SolverError, kernel
from .density import CNFDensity
from .ode import OdeResult, solve

# rayon's thread pool does not survive fork(): a forked child runs each call on a pool of its
# own (n_threads, else RAYON_NUM_THREADS, else every core).
_os.register_at_fork(after_in_child=_native._after_fork_in_child)

METHODS = tuple(_native.METHODS)

__all__ = ["CNFDensity", "METHODS", "OdeResult", "SolverError", "kernel", "solve"]
