from typing import Any, Callable, Sequence

import numpy as np
import numpy.typing as npt

class OdeResult(dict[str, Any]):
    t: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    nfev: int
    njev: int
    nlu: int
    status: int
    success: bool
    message: str
    n_accepted: int
    n_rejected: int

def solve(
    f: Callable[[float, npt.NDArray[np.float64]], npt.ArrayLike],
    t_span: tuple[float, float] | Sequence[float],
    y0: npt.ArrayLike,
    method: str = "RK45",
    rtol: float = 1e-3,
    atol: float = 1e-6,
    t_eval: npt.ArrayLike | None = None,
    n_steps: int | None = None,
    max_steps: int | None = None,
) -> OdeResult: ...
