"""Shared fixtures: small data sets, a fitted model, and the `cnf` command."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

from cnf_rs import CNFDensity

REPO = pathlib.Path(__file__).resolve().parents[4]

# Small settings that train in well under a second: the tests check plumbing and exactness,
# not fit quality.
FAST = dict(hidden_layer_sizes=(16, 16), max_iter=20, validation_interval=10, n_threads=1)


def two_moons(n, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.column_stack([x, y]) + 0.1 * rng.standard_normal((n, 2))


@pytest.fixture(scope="session")
def data():
    return two_moons(600)


@pytest.fixture(scope="session")
def fitted(data):
    return CNFDensity(**FAST).fit(data)


@pytest.fixture(scope="session")
def cnf_bin():
    """The `cnf` command: $CNF_BIN (set by crates/cnf-py/tests/pytest.rs), else the release
    build in the workspace's target folder."""
    path = pathlib.Path(os.environ.get("CNF_BIN", REPO / "target" / "release" / "cnf"))
    if not path.is_file():
        subprocess.run(
            ["cargo", "build", "--release", "--bin", "cnf"], cwd=REPO, check=True
        )
    assert path.is_file(), f"no cnf binary at {path}"
    return path
