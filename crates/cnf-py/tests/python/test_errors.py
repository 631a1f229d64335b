"""Bad input: a ValueError (or NotFittedError) with a one-line message, never a crash; solver
failures: SolverError."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from cnf_rs import CNFDensity, SolverError, _native

from conftest import FAST


def test_unfitted_model_is_refused(data):
    est = CNFDensity(**FAST)
    for call in (lambda: est.score_samples(data), lambda: est.sample(3), lambda: est.score(data)):
        with pytest.raises(NotFittedError):
            call()


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full((20, 2), np.nan), "NaN"),
        (np.array([[0.0, np.inf]] * 20), "infinity"),
        (np.zeros(20), "Expected 2D array"),
        (np.zeros((0, 2)), "0 sample"),
        (np.array([["a", "b"]] * 20), "could not convert|dtype"),
        (np.zeros((20, 2), dtype=complex), "Complex data"),
    ],
)
def test_bad_input_to_fit_and_score(fitted, bad, match):
    with pytest.raises(ValueError, match=match):
        CNFDensity(**FAST).fit(bad)
    with pytest.raises(ValueError, match=match):
        fitted.score_samples(bad)


def test_wrong_width(fitted):
    with pytest.raises(ValueError, match="X has 3 features, but CNFDensity is expecting 2"):
        fitted.score_samples(np.zeros((5, 3)))
    # The native layer's message is the `cnf density` command's.
    with pytest.raises(ValueError, match="^the data has 3 columns, the model expects 2$"):
        fitted.model_.log_density(np.zeros((5, 3)))


def test_too_few_rows_and_constant_columns_name_the_problem():
    with pytest.raises(ValueError, match="rows"):
        CNFDensity(**FAST).fit(np.random.default_rng(0).normal(size=(4, 2)))
    x = np.random.default_rng(0).normal(size=(50, 2))
    x[:, 1] = 3.0
    with pytest.raises(ValueError, match="constant"):
        CNFDensity(**FAST).fit(x)


def test_bad_settings_are_value_errors(data):
    with pytest.raises(ValueError, match="rtol must be positive"):
        CNFDensity(**FAST, rtol=-1.0).fit(data)
    with pytest.raises(ValueError, match="precision"):
        CNFDensity(**FAST, precision="f16").fit(data)
    with pytest.raises(ValueError, match="rk4 is a fixed-step method"):
        CNFDensity(**FAST, method="rk4").fit(data)
    with pytest.raises(ValueError, match="n_threads must be at least 1"):
        CNFDensity(**{**FAST, "n_threads": 0}).fit(data)
    with pytest.raises(ValueError, match=r"ema_decay.*must be in \[0, 1\)"):
        CNFDensity(**FAST, ema_decay=1.0).fit(data)


def test_value_beyond_the_precision_is_refused(fitted):
    with pytest.raises(ValueError, match="overflows the model's precision"):
        fitted.score_samples(np.array([[1e300, 0.0]]))


def test_solver_failure_is_a_solver_error(data):
    """A step budget too small for the solve is the solver's failure, not bad input."""
    est = CNFDensity(**FAST, rtol=1e-12, atol=1e-12, precision="f64").fit(data)
    assert issubclass(SolverError, RuntimeError)
    config, weights = est.model_.to_bytes()
    import json

    c = json.loads(config)
    c["solver"]["max_steps"] = 2
    tight = _native.NativeModel.from_bytes(json.dumps(c), weights)
    with pytest.raises(SolverError, match="maximum number of steps"):
        tight.log_density(data[:10])


def test_malformed_model_files_are_value_errors(fitted, tmp_path):
    config, weights = fitted.model_.to_bytes()
    with pytest.raises(ValueError, match="config.json"):
        _native.NativeModel.from_bytes("{not json", weights)
    with pytest.raises(ValueError):
        _native.NativeModel.from_bytes(config, weights[:-7])
    with pytest.raises(OSError, match="is this a model folder"):
        CNFDensity.load(tmp_path / "nothing")
