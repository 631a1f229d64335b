from ._native import SolverError as SolverError, kernel as kernel
from .density import CNFDensity as CNFDensity
from .ode import OdeResult as OdeResult, solve as solve

METHODS: tuple[str, ...]
