from os import PathLike
from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt

METHODS: list[str]
SOLVE_CHUNK: int

class SolverError(RuntimeError): ...

class NativeModel:
    @staticmethod
    def fit(
        x: npt.NDArray[np.float64],
        columns: list[str],
        context: npt.NDArray[np.float64] | None = None,
        context_columns: list[str] | None = None,
        *,
        hidden: list[int] | None = None,
        activation: str = "tanh",
        iters: int | None = None,
        batch: int | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        ema_decay: float | None = None,
        patience: int | None = None,
        val_every: int | None = None,
        method: str | None = None,
        steps: int | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        precision: str = "f32",
        seed: int = 0,
        flow_matching: bool | None = None,
        n_threads: int | None = None,
    ) -> NativeModel: ...
    @staticmethod
    def load(dir: str | PathLike[str]) -> NativeModel: ...
    def save(self, dir: str | PathLike[str]) -> None: ...
    @staticmethod
    def from_bytes(config_json: str, weights: bytes) -> NativeModel: ...
    def to_bytes(self) -> tuple[str, bytes]: ...
    def log_density(
        self,
        x: npt.NDArray[np.float64],
        context: npt.NDArray[np.float64] | None = None,
        *,
        n_threads: int | None = None,
    ) -> npt.NDArray[np.float64]: ...
    def sample(
        self,
        n: int,
        seed: int,
        context: npt.NDArray[np.float64] | None = None,
        *,
        n_threads: int | None = None,
    ) -> npt.NDArray[np.float64]: ...
    @property
    def dim(self) -> int: ...
    @property
    def columns(self) -> list[str]: ...
    @property
    def context_columns(self) -> list[str]: ...
    @property
    def precision(self) -> str: ...
    def __reduce__(self) -> tuple[object, tuple[str, bytes]]: ...

def solve(
    f: Callable[[float, npt.NDArray[np.float64]], npt.ArrayLike],
    t0: float,
    t1: float,
    y0: Sequence[float],
    *,
    method: str,
    rtol: float,
    atol: float,
    t_eval: Sequence[float] | None = None,
    steps: int | None = None,
    max_steps: int | None = None,
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], tuple[int, int, int, int, int]
]: ...
def kernel() -> str: ...
def split_rows(n: int, seed: int) -> tuple[list[int], list[int], list[int]]: ...
def _after_fork_in_child() -> None: ...
