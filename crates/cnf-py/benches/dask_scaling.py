"""Scoring on Dask against the in-process call: CNFDensity.score_samples on 10^6 rows, once in
this process (rayon on every core) and once through `dask.array.map_blocks` on a 2-worker
LocalCluster (one process per core, one thread each), alternating; checks that both give the
same numbers bit for bit. Wall time of the Dask side counts the graph, shipping the pickled
model and the rows to the workers and gathering the results (the cluster is started before).

    python crates/cnf-py/benches/dask_scaling.py [--rows 1000000] [--rounds 3]
"""

import argparse
import copy
import json
import os
import statistics
import time

import numpy as np

from cnf_rs import CNFDensity


def two_moons(n, rng):
    t = rng.uniform(0, np.pi, n)
    up = rng.random(n) < 0.5
    x = np.column_stack([np.where(up, np.cos(t), 1 - np.cos(t)),
                         np.where(up, np.sin(t), 0.5 - np.sin(t))])
    return x + 0.1 * rng.standard_normal(x.shape)


def main():
    import dask.array as da
    import distributed

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=64 * 1024, help="rows per Dask block")
    args = ap.parse_args()
    assert args.chunk % 1024 == 0, "blocks at multiples of 1024 keep the numbers bit-identical"
    rng = np.random.default_rng(0)
    est = CNFDensity(hidden_layer_sizes=(64, 64), max_iter=200, random_state=0).fit(
        two_moons(4000, rng)
    )
    x = two_moons(args.rows, rng)
    print(json.dumps({"rows": args.rows, "chunk": args.chunk, "cores": os.cpu_count(),
                      "loadavg_before": os.getloadavg()}), flush=True)
    rows = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        # One core per worker (no oversubscription); the in-process call uses every core.
        remote = copy.deepcopy(est).set_params(n_threads=1)
        for r in range(args.rounds):
            t0 = time.perf_counter()
            ref = est.score_samples(x)
            t_local = time.perf_counter() - t0
            t0 = time.perf_counter()
            dx = da.from_array(x, chunks=(args.chunk, x.shape[1]))
            got = dx.map_blocks(remote.score_samples, drop_axis=1, dtype=np.float64).compute()
            t_dask = time.perf_counter() - t0
            row = dict(round=r, in_process_s=t_local, dask_s=t_dask,
                       bit_identical=bool(np.array_equal(got, ref)),
                       loadavg=os.getloadavg()[0])
            print(json.dumps(row), flush=True)
            rows.append(row)
    med = {k: statistics.median(r[k] for r in rows) for k in ("in_process_s", "dask_s")}
    med["dask_over_in_process"] = med["dask_s"] / med["in_process_s"]
    med["all_bit_identical"] = all(r["bit_identical"] for r in rows)
    print(json.dumps({"median": med}))


if __name__ == "__main__":
    main()
