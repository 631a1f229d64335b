"""Threads, fork and Dask: the same log-densities wherever and however they are computed."""

import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import pytest

from cnf_rs import CNFDensity

from conftest import FAST, two_moons


@pytest.fixture(scope="module")
def big():
    return two_moons(5000, seed=3)


def test_thread_count_does_not_change_results(fitted, big):
    ref = fitted.score_samples(big)
    for n in (1, 2, 3):
        np.testing.assert_array_equal(fitted.set_params(n_threads=n).score_samples(big), ref)
        np.testing.assert_array_equal(
            fitted.sample(3000, random_state=1), fitted.set_params(n_threads=1).sample(3000, random_state=1)
        )
    fitted.set_params(n_threads=1)


def test_blocks_at_multiples_of_1024_give_the_same_values(fitted, big):
    ref = fitted.score_samples(big)
    parts = [fitted.score_samples(big[i : i + 2048]) for i in range(0, len(big), 2048)]
    np.testing.assert_array_equal(np.concatenate(parts), ref)


def test_rayon_num_threads_is_respected():
    """With RAYON_NUM_THREADS=3 (not this machine's core count) a call starts 3 workers."""
    code = (
        "import os, numpy as np\n"
        "from cnf_rs import CNFDensity\n"
        "from conftest import two_moons\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "est = CNFDensity(hidden_layer_sizes=(8,), max_iter=0).fit(two_moons(100))\n"
        "est.score_samples(two_moons(3000))\n"
        "print(len(os.listdir('/proc/self/task')) - before)\n"
    )
    env = {**os.environ, "RAYON_NUM_THREADS": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
        cwd=os.path.dirname(__file__),
    )
    assert int(out.stdout.strip()) == 3


def _score_in_child(args):
    est, x = args
    return est.score_samples(x)


def test_fork_after_use_is_safe(big):
    """rayon's pool does not survive fork: a forked child that scores (after the parent used
    the pool) runs on a pool of its own and gets the parent's numbers."""
    est = CNFDensity(hidden_layer_sizes=(16, 16), max_iter=20, validation_interval=10).fit(big[:500])
    ref = est.score_samples(big)  # the parent's global pool is running now
    with mp.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_score_in_child, [(est, big), (est, big[:1024])]).get(timeout=120)
    np.testing.assert_array_equal(got[0], ref)
    np.testing.assert_array_equal(got[1], ref[:1024])


def test_dask_local_cluster_scores_bit_identically(fitted, big):
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    x = np.concatenate([big] * 4)  # 20k rows in blocks of 4096 (a multiple of 1024)
    ref = fitted.score_samples(x)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster):
        dx = da.from_array(x, chunks=(4096, 2))
        got = dx.map_blocks(fitted.score_samples, drop_axis=1, dtype=np.float64).compute()
    np.testing.assert_array_equal(got, ref)


def test_sampling_after_a_fit_keeps_its_memory():
    """Each solve allocates a few MB of field scratch. Under glibc's malloc, once a fit in the
    same process had shaped the heap, every free handed that memory back to the kernel and the
    next solve faulted it in again: 16k page faults per sample(10_000) with this model, ~0.04 s
    of CPU (the extension's allocator, mimalloc, keeps it: ~150). A count, not a timing."""
    resource = pytest.importorskip("resource")
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4000, 2)) @ np.array([[1.0, 0.5], [0.0, 0.5]])
    est = CNFDensity(hidden_layer_sizes=(64, 64, 64), max_iter=60, random_state=0).fit(data)
    est.sample(10_000, random_state=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        est.sample(10_000, random_state=0)
    per_call = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
    assert per_call < 3000, f"{per_call:.0f} page faults per sample(10_000)"
