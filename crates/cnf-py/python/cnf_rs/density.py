"""The scikit-learn estimator: a continuous normalizing flow fitted by cnf's Rust engine."""

import json
import math
import os

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import _native


def _default_names(d, prefix="x"):
    return [f"{prefix}{j}" for j in range(d)]


def _context_rows(context):
    """A context as C-ordered float64 ``(m, k)``: scikit-learn's array checks (2-D, finite,
    numeric, not empty); the native layer checks it against the model."""
    return check_array(context, dtype=np.float64, order="C", input_name="context")


class CNFDensity(DensityMixin, BaseEstimator):
    """A density fitted by a continuous normalizing flow (FFJORD-style, exact log-likelihoods).

    ``fit`` trains as ``cnf train --data TABLE`` does: an 80/10/10 split of the rows from
    ``random_state``, integer-valued columns dequantised (x + U(0, 1)), whitening with the
    training split's covariance and a zero field at the start (the untrained model is the
    fitted Gaussian), maximum likelihood (or flow matching) with early stopping on the
    validation split's exact NLL; the best model is kept. A parameter left at ``None`` takes
    the command's choice for a table of that size.

    With ``context=C`` (one row per row of ``X``) ``fit`` trains the conditional density
    p(x | c) as ``cnf train --context`` does; ``score_samples``, ``score``, ``sample`` and
    ``log_prob`` of such a model take the context too, and refuse to run without it (an
    unconditional model refuses a context).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int or None
        Hidden widths of the vector field's MLP (None: 64/128/256 wide by dimension, 2 layers
        below 10k training rows, 3 above).
    activation : {"tanh", "softplus", "swish", "elu"}
    max_iter : int or None
        Training iterations (None: 2000 up to 5000 rows, else 20 epochs within 2000..20000).
    batch_size, learning_rate, weight_decay, ema_decay, patience, validation_interval : optional
        Minibatch size, Adam's rate, decoupled weight decay, decay of the moving average of
        the weights that is validated and kept, validations without improvement before
        stopping, iterations between validations (None: the command's choices).
    method : str or None
        ODE method (``"dopri5"``, ``"tsit5"``, ``"dop853"``, ``"bs3"``, or fixed-step
        ``"rk4"``, ``"euler"``, ... with ``n_steps``); None: dopri5.
    n_steps : int or None
        Fixed steps per solve (fixed-step methods).
    rtol, atol : float or None
        Tolerances of the adaptive solves (None: 1e-5, the peers' setting).
    precision : {"f32", "f64"}
        The precision training and evaluation run in.
    objective : {"ml", "fm"} or None
        Maximum likelihood through the ODE, or flow matching (straight paths). None: the
        command's default, flow matching for a conditional fit (``context`` given), maximum
        likelihood otherwise (docs/sbi.md, "Defaults of conditional runs").
    random_state : int, RandomState or None
        Seed of the split, initial weights and minibatches (None: 0, as the command).
    n_threads : int or None
        Threads of each call (None: ``RAYON_NUM_THREADS``, else every core). Set it to the
        cores a Dask/Ray worker owns so workers do not oversubscribe the machine.

    Attributes
    ----------
    model_ : cnf_rs._native.NativeModel
        The fitted model (config.json + weights, in memory).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Set when ``X`` had column names (a DataFrame).
    n_context_features_in_ : int
        Width of the context (0: an unconditional model).
    context_names_in_ : ndarray of str
        Names of the context columns (the context DataFrame's, else ``c0``, ``c1``, ...; a
        model folder's for a loaded model); empty for an unconditional model.
    """

    def __init__(
        self,
        hidden_layer_sizes=None,
        activation="tanh",
        max_iter=None,
        batch_size=None,
        learning_rate=None,
        weight_decay=None,
        ema_decay=None,
        patience=None,
        validation_interval=None,
        method=None,
        n_steps=None,
        rtol=None,
        atol=None,
        precision="f32",
        objective=None,
        random_state=None,
        n_threads=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        self.patience = patience
        self.validation_interval = validation_interval
        self.method = method
        self.n_steps = n_steps
        self.rtol = rtol
        self.atol = atol
        self.precision = precision
        self.objective = objective
        self.random_state = random_state
        self.n_threads = n_threads

    def _seed(self):
        rs = self.random_state
        if rs is None:
            return 0
        if isinstance(rs, (int, np.integer)):
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _check_X(self, X, reset):
        return validate_data(
            self, X, reset=reset, dtype=np.float64, order="C", ensure_min_features=1
        )

    def _check_context(self, context):
        """The context of a call on the fitted model (None stays None); a DataFrame's columns
        must be the fitted context columns, in order."""
        if context is None:
            return None
        names = getattr(context, "columns", None)
        fitted = list(getattr(self, "context_names_in_", ()))
        if names is not None and fitted and [str(c) for c in names] != fitted:
            raise ValueError(
                f"the context's columns {[str(c) for c in names]} are not the fitted context "
                f"columns {fitted}"
            )
        return _context_rows(context)

    def fit(self, X, y=None, context=None):
        """Fits the flow to the rows of ``X`` (``(n_samples, n_features)``, at least 10 rows);
        with ``context`` (``(n_samples, n_context)``), the conditional density p(x | c).

        Raises ``ValueError`` for bad input and ``SolverError`` when training diverges.
        """
        if self.objective not in ("ml", "fm", None):
            raise ValueError(f'objective must be "ml", "fm" or None, got {self.objective!r}')
        X = self._check_X(X, reset=True)
        names = getattr(self, "feature_names_in_", None)
        columns = [str(c) for c in names] if names is not None else _default_names(X.shape[1])
        context_columns = None
        if context is not None:
            names = getattr(context, "columns", None)
            context = _context_rows(context)
            context_columns = (
                [str(c) for c in names]
                if names is not None
                else _default_names(context.shape[1], "c")
            )
        hidden = self.hidden_layer_sizes
        model = _native.NativeModel.fit(
            X,
            columns,
            context,
            context_columns,
            hidden=None if hidden is None else [int(h) for h in hidden],
            activation=self.activation,
            iters=self.max_iter,
            batch=self.batch_size,
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            ema_decay=self.ema_decay,
            patience=self.patience,
            val_every=self.validation_interval,
            method=self.method,
            steps=self.n_steps,
            rtol=self.rtol,
            atol=self.atol,
            precision=self.precision,
            seed=self._seed(),
            flow_matching=None if self.objective is None else self.objective == "fm",
            n_threads=self.n_threads,
        )
        self._adopt(model)
        return self

    def score_samples(self, X, context=None):
        """log p(x) of each row of ``X`` (data space, exact trace), shape ``(n_samples,)``;
        for a conditional model log p(x | c), ``context`` one row per row of ``X``.

        Rows are solved in blocks of 1024 (as ``cnf density``): a row's value depends only on
        the rows of its block, so splitting ``X`` (and its context) at multiples of 1024 (Dask
        blocks, say) gives the same numbers bit for bit. A context column far outside the
        training range gives a ``UserWarning`` with ``cnf density``'s message.
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        context = self._check_context(context)
        return self.model_.log_density(X, context, n_threads=self.n_threads)

    def score(self, X, y=None, context=None):
        """The mean log-likelihood of the rows of ``X`` (as ``GaussianMixture.score``; not
        the sum that ``KernelDensity.score`` returns); given ``context`` for a conditional
        model."""
        return float(np.mean(self.score_samples(X, context=context)))

    def sample(self, n_samples=1, random_state=None, context=None):
        """Draws samples, ``(n_samples, n_features)``.

        ``n_samples`` may also be a torch-style shape: ``sample((n,))`` gives ``(n, d)``,
        ``sample(())`` one point ``(d,)``. With an integer ``random_state`` S the rows are
        those of ``cnf sample -n N --seed S``; None draws a seed from NumPy's global generator.

        A conditional model draws ``n_samples`` for each row of ``context``: ``(m, k)`` gives
        ``(m * n_samples, n_features)``, draw ``j`` of context row ``i`` at row
        ``i * n_samples + j`` (the rows of ``cnf sample -n N --seed S --given FILE``, without
        its ``given_row`` column); a single row ``(k,)`` gives ``(n_samples, n_features)``.
        With a torch-style shape the result is ``shape + (m, n_features)`` (torch's sample
        shape, then batch shape), or ``shape + (n_features,)`` for a single row. A context
        column far outside the training range gives a ``UserWarning`` with ``cnf sample``'s
        message.
        """
        check_is_fitted(self)
        batch = ()
        if context is not None:
            single = np.ndim(context) == 1
            context = self._check_context(np.reshape(context, (1, -1)) if single else context)
            batch = () if single else (context.shape[0],)
        if isinstance(n_samples, (tuple, list)):
            shape = tuple(int(s) for s in n_samples)
        else:
            shape = None
            n_samples = int(n_samples)
        n = math.prod(shape) if shape is not None else n_samples
        if n < 0 or (shape is None and n < 1):
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        if random_state is None or not isinstance(random_state, (int, np.integer)):
            seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        else:
            seed = int(random_state)
        x = self.model_.sample(n, seed, context, n_threads=self.n_threads)
        d = self.n_features_in_
        if shape is None:
            return x
        if not batch:
            return x.reshape(shape + (d,))
        # Rows come grouped by context row, (m, n, d); torch puts the sample shape first.
        return x.reshape(batch + (n, d)).swapaxes(0, 1).reshape(shape + batch + (d,))

    def log_prob(self, X, context=None):
        """torch.distributions-style log-density: ``X`` of shape ``(..., d)`` gives ``(...)``;
        a conditional model's ``context`` of shape ``(..., k)`` is broadcast against ``X``'s
        batch shape (one context row for many points, say)."""
        X = np.asarray(X)
        if X.ndim == 0:
            raise ValueError("log_prob needs points of shape (..., n_features)")
        if context is None:
            batch = X.shape[:-1]
            flat = X.reshape((-1, X.shape[-1])) if X.ndim != 2 else X
            return self.score_samples(flat).reshape(batch)
        C = np.asarray(context)
        if C.ndim == 0:
            raise ValueError("log_prob needs a context of shape (..., n_context)")
        batch = np.broadcast_shapes(X.shape[:-1], C.shape[:-1])
        flat_x = np.broadcast_to(X, batch + X.shape[-1:]).reshape((-1, X.shape[-1]))
        flat_c = np.broadcast_to(C, batch + C.shape[-1:]).reshape((-1, C.shape[-1]))
        return self.score_samples(flat_x, context=flat_c).reshape(batch)

    def save(self, path):
        """Writes the model folder ``path`` (config.json + model.safetensors), readable by
        ``cnf density --model``, ``cnf eval``, ``cnf sample`` and :meth:`load`."""
        check_is_fitted(self)
        self.model_.save(os.fspath(path))

    @classmethod
    def load(cls, path, **params):
        """The model of a folder written by ``cnf train`` or :meth:`save`; ``params`` set
        evaluation settings such as ``n_threads``."""
        model = _native.NativeModel.load(os.fspath(path))
        config = json.loads(model.to_bytes()[0])
        est = cls(
            hidden_layer_sizes=tuple(config["mlp"]["hidden"]),
            activation=config["mlp"]["activation"],
            precision=config["precision"],
            random_state=config["seed"],
        )
        est.set_params(**params)
        est._adopt(model)
        if list(model.columns) != _default_names(model.dim):
            est.feature_names_in_ = np.asarray(model.columns, dtype=object)
        return est

    def _adopt(self, model):
        """Takes ``model`` as the fitted model; the attributes of its shape follow it."""
        self.model_ = model
        self.n_features_in_ = model.dim
        self.context_names_in_ = np.asarray(model.context_columns, dtype=object)
        self.n_context_features_in_ = len(self.context_names_in_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags
