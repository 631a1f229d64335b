from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, DensityMixin

from ._native import NativeModel

class CNFDensity(DensityMixin, BaseEstimator):
    hidden_layer_sizes: tuple[int, ...] | None
    activation: str
    max_iter: int | None
    batch_size: int | None
    learning_rate: float | None
    weight_decay: float | None
    ema_decay: float | None
    patience: int | None
    validation_interval: int | None
    method: str | None
    n_steps: int | None
    rtol: float | None
    atol: float | None
    precision: str
    objective: str | None
    random_state: int | np.random.RandomState | None
    n_threads: int | None
    model_: NativeModel
    n_features_in_: int
    feature_names_in_: npt.NDArray[np.object_]
    n_context_features_in_: int
    context_names_in_: npt.NDArray[np.object_]
    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] | None = None,
        activation: str = "tanh",
        max_iter: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        weight_decay: float | None = None,
        ema_decay: float | None = None,
        patience: int | None = None,
        validation_interval: int | None = None,
        method: str | None = None,
        n_steps: int | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        precision: str = "f32",
        objective: str | None = None,
        random_state: int | np.random.RandomState | None = None,
        n_threads: int | None = None,
    ) -> None: ...
    def fit(
        self, X: npt.ArrayLike, y: Any = None, context: npt.ArrayLike | None = None
    ) -> CNFDensity: ...
    def score_samples(
        self, X: npt.ArrayLike, context: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.float64]: ...
    def score(
        self, X: npt.ArrayLike, y: Any = None, context: npt.ArrayLike | None = None
    ) -> float: ...
    def sample(
        self,
        n_samples: int | tuple[int, ...] = 1,
        random_state: int | np.random.RandomState | None = None,
        context: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.float64]: ...
    def log_prob(
        self, X: npt.ArrayLike, context: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.float64]: ...
    def save(self, path: str | PathLike[str]) -> None: ...
    @classmethod
    def load(cls, path: str | PathLike[str], **params: Any) -> CNFDensity: ...
