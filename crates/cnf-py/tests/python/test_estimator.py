"""scikit-learn's estimator checks, the torch-style aliases and the estimator's contract."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from cnf_rs import CNFDensity, _native

from conftest import FAST

# No check is tagged out. Note on check_methods_subset_invariance and
# check_methods_sample_order_invariance: adaptive solves share their steps within a block of up
# to 1024 rows (as `cnf density`), so a row's value can move within the solver's tolerance when
# other rows join its block; they pass here, and splits at multiples of 1024 are bit-identical
# whatever the model (test_scaling.py).


@parametrize_with_checks([CNFDensity(**FAST)])
def test_sklearn_checks(estimator, check):
    check(estimator)


def test_score_is_the_mean_log_likelihood(fitted, data):
    assert fitted.score(data) == pytest.approx(np.mean(fitted.score_samples(data)), rel=1e-15)


def test_log_prob_is_score_samples_over_leading_shape(fitted, data):
    x = data[:24]
    lp = fitted.score_samples(x)
    np.testing.assert_array_equal(fitted.log_prob(x), lp)
    np.testing.assert_array_equal(fitted.log_prob(x.reshape(4, 6, 2)), lp.reshape(4, 6))


def test_sample_shapes_and_seeds(fitted):
    assert fitted.sample(5, random_state=1).shape == (5, 2)
    assert fitted.sample((3,), random_state=1).shape == (3, 2)
    assert fitted.sample((2, 3), random_state=1).shape == (2, 3, 2)
    assert fitted.sample((), random_state=1).shape == (2,)
    np.testing.assert_array_equal(fitted.sample(7, random_state=4), fitted.sample(7, random_state=4))
    assert not np.array_equal(fitted.sample(7, random_state=4), fitted.sample(7, random_state=5))


def test_samples_follow_the_fitted_density(data):
    """Samples and data agree in mean and covariance within sampling error (a trained flow)."""
    est = CNFDensity(hidden_layer_sizes=(32, 32), max_iter=200, validation_interval=50).fit(data)
    s = est.sample(4000, random_state=0)
    np.testing.assert_allclose(s.mean(axis=0), data.mean(axis=0), atol=0.1)
    np.testing.assert_allclose(np.cov(s.T), np.cov(data.T), atol=0.1)


def test_untrained_model_is_the_fitted_gaussian(data):
    """Zero iterations keep the start: whitening with the training split's covariance and a
    zero field, i.e. a Gaussian. Its log-density is a quadratic form in x (constant second
    differences along a line, to the solver's rounding) and close to the Gaussian of all rows
    (the training split holds 80% of them)."""
    est = CNFDensity(max_iter=0, precision="f64", rtol=1e-10, atol=1e-10).fit(data)
    x = data[:50]
    m, S = data.mean(axis=0), np.cov(data.T)
    d = x - m
    ref = -0.5 * np.einsum("ij,jk,ik->i", d, np.linalg.inv(S), d) - 0.5 * np.log(
        np.linalg.det(2 * np.pi * S)
    )
    np.testing.assert_allclose(est.score_samples(x), ref, atol=0.1)
    t = np.linspace(-1, 1, 9)[:, None]
    line = m + t * np.array([[0.3, -0.2]])
    second = np.diff(est.score_samples(line), 2)
    np.testing.assert_allclose(second, second[0], rtol=1e-9)


def gaussian_log_density(x, rows):
    """log N(x; mean, covariance) of `rows` (the population covariance, divisor n)."""
    m, S = rows.mean(axis=0), np.cov(rows.T, bias=True)
    d = x - m
    return -0.5 * np.einsum("ij,jk,ik->i", d, np.linalg.inv(S), d) - 0.5 * np.log(
        np.linalg.det(2 * np.pi * S)
    )


def test_split_rows_are_the_rows_fit_trains_on(data):
    """`_native.split_rows` gives fit's 80/10/10 split: the untrained model is exactly the
    Gaussian of the training rows it names (whitening with their mean and covariance, a zero
    field), and not that of another seed's rows."""
    n = len(data)
    train, val, test = _native.split_rows(n, 3)
    assert (len(train), len(val), len(test)) == (480, 60, 60)
    assert sorted(train + val + test) == list(range(n))
    est = CNFDensity(max_iter=0, precision="f64", rtol=1e-10, atol=1e-10, random_state=3)
    x = data[:50]
    logp = est.fit(data).score_samples(x)
    np.testing.assert_allclose(logp, gaussian_log_density(x, data[train]), rtol=0, atol=1e-8)
    other = gaussian_log_density(x, data[_native.split_rows(n, 4)[0]])
    assert np.max(np.abs(logp - other)) > 1e-4


def test_get_set_params_round_trip():
    est = CNFDensity(max_iter=3, precision="f64")
    assert est.get_params()["max_iter"] == 3
    est.set_params(max_iter=5, n_threads=2)
    assert est.max_iter == 5 and est.n_threads == 2
