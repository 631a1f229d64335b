"""Pickling and model folders: exact round trips, and the `cnf` command reads what Python
writes and the reverse."""

import csv
import pickle
import subprocess

import numpy as np
import pytest

from cnf_rs import CNFDensity

from conftest import FAST


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[float(v) for v in r] for r in rows[1:]])


@pytest.mark.parametrize("precision", ["f32", "f64"])
def test_pickle_round_trips_exactly(data, precision):
    est = CNFDensity(**FAST, precision=precision).fit(data)
    back = pickle.loads(pickle.dumps(est))
    assert back.get_params() == est.get_params()
    assert back.model_.to_bytes() == est.model_.to_bytes()
    np.testing.assert_array_equal(back.score_samples(data), est.score_samples(data))
    np.testing.assert_array_equal(back.sample(50, random_state=2), est.sample(50, random_state=2))


def test_save_load_round_trips_exactly(fitted, data, tmp_path):
    fitted.save(tmp_path / "m")
    back = CNFDensity.load(tmp_path / "m", n_threads=1)
    assert back.model_.to_bytes() == fitted.model_.to_bytes()
    np.testing.assert_array_equal(back.score_samples(data), fitted.score_samples(data))
    assert back.n_features_in_ == 2 and back.n_threads == 1


def test_cli_reads_a_model_saved_from_python(fitted, data, tmp_path, cnf_bin):
    model = tmp_path / "model"
    fitted.save(model)
    x = data[:300]
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="x0,x1", comments="")
    out = tmp_path / "logp.csv"
    subprocess.run(
        [cnf_bin, "density", "--model", model, "--input", tmp_path / "x.csv", "--output", out],
        check=True,
    )
    header, table = read_csv(out)
    assert header == ["x0", "x1", "logp"]
    np.testing.assert_array_equal(table[:, 2], fitted.score_samples(x))
    # `cnf sample --seed S` draws the rows of sample(n, random_state=S).
    samples = tmp_path / "s.csv"
    subprocess.run(
        [cnf_bin, "sample", "--model", model, "-n", "100", "--seed", "7", "--output", samples],
        check=True,
    )
    _, drawn = read_csv(samples)
    np.testing.assert_array_equal(drawn, fitted.sample(100, random_state=7))
    # `cnf eval` on all rows of a file reports the mean NLL = -score.
    report = subprocess.run(
        [cnf_bin, "eval", "--model", model, "--data", tmp_path / "x.csv", "--json"],
        check=True, capture_output=True, text=True,
    )
    import json

    assert json.loads(report.stdout)["test_nll"] == pytest.approx(-fitted.score(x), rel=1e-12)


def test_python_reads_a_model_trained_by_the_cli(data, tmp_path, cnf_bin):
    train = tmp_path / "train.csv"
    np.savetxt(train, data, delimiter=",", header="a,b", comments="")
    model = tmp_path / "cli-model"
    subprocess.run(
        [cnf_bin, "train", "--data", train, "--iters", "10", "--val-every", "5", "--hidden",
         "16,16", "--no-plots", "--out", model],
        check=True, capture_output=True,
    )
    est = CNFDensity.load(model)
    assert est.n_features_in_ == 2
    assert list(est.feature_names_in_) == ["a", "b"]
    assert est.hidden_layer_sizes == (16, 16)
    x = data[:200]
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="a,b", comments="")
    out = tmp_path / "logp.csv"
    subprocess.run(
        [cnf_bin, "density", "--model", model, "--input", tmp_path / "x.csv", "--output", out],
        check=True,
    )
    _, table = read_csv(out)
    import pandas as pd

    np.testing.assert_array_equal(
        table[:, 2], est.score_samples(pd.DataFrame(x, columns=["a", "b"]))
    )


def test_fit_trains_the_model_cnf_train_trains(data, tmp_path, cnf_bin):
    """Same table, same settings: fit and `cnf train` keep the same weights, bit for bit."""
    table = tmp_path / "t.csv"
    np.savetxt(table, data, delimiter=",", fmt="%.17g", header="x0,x1", comments="")
    out = tmp_path / "cli"
    subprocess.run(
        [cnf_bin, "train", "--data", table, "--iters", "20", "--val-every", "10", "--hidden",
         "16,16", "--seed", "5", "--no-plots", "--out", out],
        check=True, capture_output=True,
    )
    est = CNFDensity(hidden_layer_sizes=(16, 16), max_iter=20, validation_interval=10,
                     random_state=5).fit(data)
    assert est.model_.to_bytes()[1] == CNFDensity.load(out).model_.to_bytes()[1]
