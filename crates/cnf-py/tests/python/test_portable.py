"""The portable build: the products run on the AVX-512 kernel where the CPU has it and on the
generic path elsewhere; both give the same log-densities within the solver's tolerance (the two
paths sum in different orders, so they agree to rounding, not bit for bit)."""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cnf_rs
from cnf_rs import CNFDensity

from conftest import two_moons
from test_persistence import read_csv

# Rounding differences (f32: ~1e-7 relative) can flip an adaptive step's acceptance, which moves
# a result by up to the solve's tolerance (1e-5); 1e-4 leaves a margin without hiding a wrong
# kernel (a wrong product is off by O(1)).
TOLERANCE = 1e-4


def cpu_has_avx512():
    flags = pathlib.Path("/proc/cpuinfo").read_text().split()
    return "avx512f" in flags and "fma" in flags


@pytest.fixture(scope="module")
def model_and_points(tmp_path_factory):
    data = two_moons(2000, seed=5)
    # 64-wide layers: products large enough for the AVX-512 kernel's tiles.
    est = CNFDensity(hidden_layer_sizes=(64, 64), max_iter=60, validation_interval=30,
                     random_state=0, n_threads=2).fit(data)
    folder = tmp_path_factory.mktemp("portable")
    est.save(folder / "model")
    x = two_moons(3000, seed=6)
    np.savetxt(folder / "x.csv", x, delimiter=",", fmt="%.17g", header="x0,x1", comments="")
    return est, folder, x


def test_this_process_runs_the_kernel_the_cpu_has():
    forced = os.environ.get("CNF_KERNEL") == "generic"
    assert cnf_rs.kernel() == ("avx512" if cpu_has_avx512() and not forced else "generic")


def test_generic_path_agrees_with_the_kernel(model_and_points):
    """CNF_KERNEL=generic forces the portable products in a fresh process."""
    est, folder, x = model_and_points
    code = (
        "import sys, numpy as np, cnf_rs\n"
        "est = cnf_rs.CNFDensity.load(sys.argv[1], n_threads=2)\n"
        "x = np.loadtxt(sys.argv[2], delimiter=',', skiprows=1)\n"
        "np.save(sys.argv[3], est.score_samples(x))\n"
        "print(cnf_rs.kernel())\n"
    )
    out = folder / "generic.npy"
    run = subprocess.run(
        [sys.executable, "-c", code, folder / "model", folder / "x.csv", out],
        env={**os.environ, "CNF_KERNEL": "generic"}, check=True, capture_output=True, text=True,
    )
    assert run.stdout.strip() == "generic"
    generic = np.load(out)
    native = est.score_samples(x)
    np.testing.assert_allclose(generic, native, rtol=0, atol=TOLERANCE)
    if cnf_rs.kernel() == "avx512":
        # Both paths really ran: they sum in different orders, so some values differ.
        assert np.any(generic != native)


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="qemu-user is not installed")
def test_cnf_density_runs_on_a_cpu_without_avx512(model_and_points, cnf_bin):
    """The `cnf` binary (built for x86-64-v3) on an emulated Haswell (AVX2 and FMA, no
    AVX-512): no illegal instruction, and the log-densities of the native run."""
    est, folder, x = model_and_points
    out = folder / "haswell.csv"
    subprocess.run(
        ["qemu-x86_64", "-cpu", "Haswell", cnf_bin, "density", "--model", folder / "model",
         "--input", folder / "x.csv", "--output", out],
        check=True, capture_output=True, timeout=600,
    )
    _, table = read_csv(out)
    np.testing.assert_allclose(table[:, -1], est.score_samples(x), rtol=0, atol=TOLERANCE)
