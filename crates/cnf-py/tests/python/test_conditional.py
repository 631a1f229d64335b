"""Conditional models: fit(X, context=C) learns p(x | c); scoring, sampling, pickling and model
folders take the context as `cnf train --context`, `cnf density` and `cnf sample --given` do."""

import json
import pickle
import re
import subprocess

import numpy as np
import pytest

from cnf_rs import CNFDensity

from conftest import FAST
from test_persistence import read_csv

# x = A c + noise: given c, x ~ N(A c, diag(SIGMA^2)); the marginal of x is far wider.
A = np.array([2.0, -1.0])
SIGMA = np.array([0.5, 0.3])


def linear_gaussian(n, seed):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n, 1))
    x = c * A + SIGMA * rng.standard_normal((n, 2))
    return x, c


def true_log_density(x, c):
    z = (x - c * A) / SIGMA
    return np.sum(-0.5 * z**2 - np.log(SIGMA) - 0.5 * np.log(2 * np.pi), axis=1)


@pytest.fixture(scope="module")
def gaussian_data():
    return linear_gaussian(3000, seed=1)


@pytest.fixture(scope="module")
def conditional(gaussian_data):
    x, c = gaussian_data
    # Maximum likelihood (a conditional fit's default objective is flow matching, whose
    # 30000-iteration default is far more than this test needs).
    return CNFDensity(
        hidden_layer_sizes=(32, 32), max_iter=1000, validation_interval=50, random_state=0,
        n_threads=2, objective="ml",
    ).fit(x, context=c)


def test_fitted_conditional_density_approaches_the_closed_form(conditional):
    x, c = linear_gaussian(2000, seed=7)  # held out
    fitted = conditional.score_samples(x, context=c)
    exact = true_log_density(x, c)
    # The marginal of x is 1.67 nats per row worse: a model that ignored c could not pass.
    # (1000 iterations reach 0.02 on average, 0.17 RMS per row; the tails fit last.)
    assert abs(fitted.mean() - exact.mean()) < 0.05, (fitted.mean(), exact.mean())
    assert np.sqrt(np.mean((fitted - exact) ** 2)) < 0.25
    assert conditional.score(x, context=c) == pytest.approx(fitted.mean(), rel=1e-15)


def test_conditional_samples_have_the_conditional_moments(conditional):
    given = np.array([[-1.0], [0.5], [1.5]])
    n = 4000
    draws = conditional.sample(n, random_state=3, context=given)
    assert draws.shape == (3 * n, 2)
    for i, c in enumerate(given[:, 0]):
        rows = draws[i * n : (i + 1) * n]  # draw j of context row i at row i n + j
        # Model error (a few hundredths) plus 4 standard errors of the sample moments.
        error = np.abs(rows.mean(axis=0) - A * c)
        assert np.all(error < 0.06 + 4 * SIGMA / np.sqrt(n)), (c, rows.mean(axis=0))
        np.testing.assert_allclose(rows.std(axis=0), SIGMA, rtol=0.12)


def test_sample_shapes_and_torch_style_order(conditional):
    given = np.array([[-1.0], [0.5], [1.5]])
    flat = conditional.sample(5, random_state=4, context=given)
    torch_style = conditional.sample((5,), random_state=4, context=given)
    assert torch_style.shape == (5, 3, 2)  # sample shape, then batch shape, then event shape
    np.testing.assert_array_equal(torch_style, flat.reshape(3, 5, 2).swapaxes(0, 1))
    one = conditional.sample(7, random_state=4, context=[0.5])  # a single context row (k,)
    assert one.shape == (7, 2)
    np.testing.assert_array_equal(one, conditional.sample(7, random_state=4, context=[[0.5]]))
    assert conditional.sample((2, 3), random_state=4, context=[0.5]).shape == (2, 3, 2)


def test_log_prob_broadcasts_the_context(conditional):
    x, _ = linear_gaussian(6, seed=9)
    got = conditional.log_prob(x.reshape(2, 3, 2), context=np.array([0.25]))
    want = conditional.score_samples(x, context=np.full((6, 1), 0.25))
    np.testing.assert_array_equal(got, want.reshape(2, 3))


def test_results_do_not_depend_on_row_batching(conditional):
    x, c = linear_gaussian(5000, seed=11)
    whole = conditional.score_samples(x, context=c)
    parts = [conditional.score_samples(x[i : i + 2048], context=c[i : i + 2048])
             for i in range(0, len(x), 2048)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    np.testing.assert_array_equal(
        conditional.set_params(n_threads=1).score_samples(x, context=c), whole
    )
    conditional.set_params(n_threads=2)


def test_conditional_pickle_and_folder_round_trip_exactly(conditional, tmp_path):
    x, c = linear_gaussian(300, seed=5)
    ref = conditional.score_samples(x, context=c)
    back = pickle.loads(pickle.dumps(conditional))
    assert back.model_.to_bytes() == conditional.model_.to_bytes()
    np.testing.assert_array_equal(back.score_samples(x, context=c), ref)
    conditional.save(tmp_path / "m")
    loaded = CNFDensity.load(tmp_path / "m")
    assert loaded.n_context_features_in_ == 1 and list(loaded.context_names_in_) == ["c0"]
    np.testing.assert_array_equal(loaded.score_samples(x, context=c), ref)
    np.testing.assert_array_equal(
        loaded.sample(20, random_state=1, context=c[:3]),
        conditional.sample(20, random_state=1, context=c[:3]),
    )


def test_cli_reads_a_conditional_model_saved_from_python(conditional, tmp_path, cnf_bin):
    model = tmp_path / "model"
    conditional.save(model)
    x, c = linear_gaussian(300, seed=6)
    points = tmp_path / "xc.csv"
    np.savetxt(points, np.hstack([x, c]), delimiter=",", fmt="%.17g", header="x0,x1,c0",
               comments="")
    out = tmp_path / "logp.csv"
    subprocess.run(
        [cnf_bin, "density", "--model", model, "--input", points, "--output", out], check=True,
        capture_output=True,
    )
    header, table = read_csv(out)
    assert header[-1] == "logp"
    np.testing.assert_array_equal(table[:, -1], conditional.score_samples(x, context=c))
    # `cnf sample --given` draws the rows of sample(n, context=...), grouped by given row.
    given = np.array([[-1.0], [0.5], [1.5]])
    given_csv = tmp_path / "given.csv"
    np.savetxt(given_csv, given, delimiter=",", fmt="%.17g", header="c0", comments="")
    samples = tmp_path / "s.csv"
    subprocess.run(
        [cnf_bin, "sample", "--model", model, "--given", given_csv, "-n", "40", "--seed", "3",
         "--output", samples],
        check=True, capture_output=True,
    )
    header, drawn = read_csv(samples)
    assert header == ["given_row", "x0", "x1"]
    np.testing.assert_array_equal(drawn[:, 0], np.repeat([0, 1, 2], 40))
    np.testing.assert_array_equal(drawn[:, 1:], conditional.sample(40, random_state=3,
                                                                   context=given))


def test_python_reads_and_matches_a_conditional_model_of_the_cli(tmp_path, cnf_bin):
    """`cnf train --context` and fit(X, context=C) with the same settings keep the same
    weights; Python scores a CLI model as `cnf density` does."""
    x, c = linear_gaussian(600, seed=2)
    train = tmp_path / "train.csv"
    np.savetxt(train, np.hstack([x, c]), delimiter=",", fmt="%.17g", header="a,b,theta",
               comments="")
    model = tmp_path / "cli-model"
    subprocess.run(
        [cnf_bin, "train", "--data", train, "--context", "theta", "--iters", "20",
         "--val-every", "10", "--hidden", "16,16", "--seed", "5", "--no-plots", "--out", model],
        check=True, capture_output=True,
    )
    est = CNFDensity.load(model)
    assert est.n_features_in_ == 2 and list(est.feature_names_in_) == ["a", "b"]
    assert list(est.context_names_in_) == ["theta"]
    out = tmp_path / "logp.csv"
    subprocess.run(
        [cnf_bin, "density", "--model", model, "--input", train, "--output", out], check=True,
        capture_output=True,
    )
    _, table = read_csv(out)
    import pandas as pd

    np.testing.assert_array_equal(
        table[:, -1],
        est.score_samples(pd.DataFrame(x, columns=["a", "b"]),
                          context=pd.DataFrame(c, columns=["theta"])),
    )
    fitted = CNFDensity(hidden_layer_sizes=(16, 16), max_iter=20, validation_interval=10,
                        random_state=5).fit(pd.DataFrame(x, columns=["a", "b"]),
                                            context=pd.DataFrame(c, columns=["theta"]))
    assert fitted.model_.to_bytes()[1] == est.model_.to_bytes()[1]
    config = json.loads(fitted.model_.to_bytes()[0])
    assert config["context"]["columns"] == ["theta"]
    # The same 90/5/5 split as the command's (CONDITIONAL_SPLIT).
    cli_config = json.loads((model / "config.json").read_text())
    assert config["data"]["split"] == cli_config["data"]["split"] == [0.9, 0.05, 0.05]


@pytest.fixture(scope="module")
def small_conditional():
    x, c = linear_gaussian(200, seed=3)
    return CNFDensity(**FAST).fit(x, context=c)


def test_context_errors(fitted, small_conditional):
    x, c = linear_gaussian(20, seed=4)
    with pytest.raises(ValueError, match="^the model is unconditional: it takes no context$"):
        fitted.score_samples(x, context=c)
    with pytest.raises(ValueError, match="unconditional"):
        fitted.sample(3, context=c)
    with pytest.raises(ValueError, match="^the model is conditional on c0: give a context$"):
        small_conditional.score_samples(x)
    with pytest.raises(ValueError, match="conditional on c0: give a context"):
        small_conditional.sample(3)
    with pytest.raises(ValueError, match="^the context has 2 columns, the model is conditioned "
                                         r"on 1 \(c0\)$"):
        small_conditional.score_samples(x, context=np.hstack([c, c]))
    with pytest.raises(ValueError, match="the context has 2 columns"):
        small_conditional.sample(3, context=[[0.0, 1.0]])
    with pytest.raises(ValueError, match="^19 context rows for 20 points: give one context row "
                                         "per point$"):
        small_conditional.score_samples(x, context=c[:19])
    bad = c.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="Input context contains NaN"):
        small_conditional.score_samples(x, context=bad)
    with pytest.raises(ValueError, match="Input context contains NaN"):
        CNFDensity(**FAST).fit(x, context=bad)
    with pytest.raises(ValueError, match="Expected 2D array"):
        small_conditional.score_samples(x, context=c[:, 0])
    with pytest.raises(ValueError, match="19 context rows for 20 data rows"):
        CNFDensity(**FAST).fit(x, context=c[:19])
    import pandas as pd

    with pytest.raises(ValueError, match="both a data column and a context column"):
        CNFDensity(**FAST).fit(pd.DataFrame(x, columns=["a", "b"]),
                               context=pd.DataFrame(c, columns=["a"]))
    with pytest.raises(ValueError, match="not the fitted context columns"):
        small_conditional.score_samples(x, context=pd.DataFrame(c, columns=["theta"]))


def test_a_context_far_outside_the_training_range_warns_as_the_cli(small_conditional, tmp_path,
                                                                    cnf_bin):
    """The rule of `cnf density` and `cnf sample` (cnf-train's `ContextColumns::far_outside`:
    more than one training standard deviation beyond the training split's range) and its
    message, as a UserWarning attributed to the caller."""
    import warnings

    ctx = json.loads(small_conditional.model_.to_bytes()[0])["context"]
    lo, hi, sd = ctx["min"][0], ctx["max"][0], ctx["std"][0]
    x, _ = linear_gaussian(4, seed=12)
    inside = np.array([[lo], [hi], [hi + 0.9 * sd], [0.5 * (lo + hi)]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        small_conditional.score_samples(x, context=inside)
        small_conditional.sample(2, random_state=0, context=inside)
    far = inside.copy()
    far[2, 0] = 50.0
    with pytest.warns(UserWarning) as caught:
        logp = small_conditional.score_samples(x, context=far)
    assert len(caught) == 1
    message = str(caught[0].message)
    named = re.fullmatch(r'context column "c0" is far outside the training range \[(\S+), '
                         r"(\S+)\] \(row 3: 50\); the model extrapolates there", message)
    assert named and [float(v) for v in named.groups()] == [lo, hi], message
    assert caught[0].filename == __file__  # the caller's line, not the package's
    assert np.all(np.isfinite(logp))  # a warning, not an error
    with pytest.warns(UserWarning, match="^" + re.escape(message) + "$"):
        small_conditional.sample(2, random_state=0, context=far)
    # `cnf density` prints the same message on stderr, after its "warning: " prefix.
    model = tmp_path / "model"
    small_conditional.save(model)
    points = tmp_path / "xc.csv"
    np.savetxt(points, np.hstack([x, far]), delimiter=",", fmt="%.17g", header="x0,x1,c0",
               comments="")
    cli = subprocess.run(
        [cnf_bin, "density", "--model", model, "--input", points, "--output",
         tmp_path / "logp.csv"], check=True, capture_output=True, text=True,
    )
    assert f"warning: {message}" in cli.stderr.splitlines()
