"""Python's overhead on the engine: CNFDensity.score_samples on 10k rows and sample(10_000)
against the same work done by cnf-train in Rust (examples/rust_peer.rs), on the same model and
rows, in the same run, alternating. Prints one JSON line per round and the medians.

    cargo build --release -p cnf-py --example rust_peer
    python crates/cnf-py/benches/overhead.py [--rounds 5] [--reps 7]
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import numpy as np

from cnf_rs import CNFDensity

REPO = pathlib.Path(__file__).resolve().parents[3]


def median_time(f, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--peer", type=pathlib.Path,
                    default=REPO / "target" / "release" / "examples" / "rust_peer",
                    help="the Rust peer's binary (examples/rust_peer.rs)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    # Two moons, fitted briefly: a field with curvature, so solves take realistic steps.
    t = rng.uniform(0, np.pi, 4000)
    up = rng.random(4000) < 0.5
    data = np.column_stack([np.where(up, np.cos(t), 1 - np.cos(t)),
                            np.where(up, np.sin(t), 0.5 - np.sin(t))])
    data += 0.1 * rng.standard_normal(data.shape)
    est = CNFDensity(hidden_layer_sizes=(64, 64, 64), max_iter=300, random_state=0).fit(data)
    x = data[rng.integers(0, len(data), args.rows)] + 0.01 * rng.standard_normal((args.rows, 2))
    peer = args.peer
    with tempfile.TemporaryDirectory() as tmp:
        model = pathlib.Path(tmp) / "model"
        est.save(model)
        points = pathlib.Path(tmp) / "x.csv"
        np.savetxt(points, x, delimiter=",", fmt="%.17g", header="x0,x1", comments="")
        rounds = []
        for r in range(args.rounds):
            out = subprocess.run([peer, model, points, str(args.rows), str(args.reps)],
                                 check=True, capture_output=True, text=True)
            rust = json.loads(out.stdout)
            py_d = median_time(lambda: est.score_samples(x), args.reps)
            py_s = median_time(lambda: est.sample(args.rows, random_state=0), args.reps)
            row = dict(round=r, rust_log_density_s=rust["log_density_s"], py_log_density_s=py_d,
                       rust_sample_s=rust["sample_s"], py_sample_s=py_s)
            print(json.dumps(row), flush=True)
            rounds.append(row)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0] if k != "round"}
    med["log_density_py_over_rust"] = med["py_log_density_s"] / med["rust_log_density_s"]
    med["sample_py_over_rust"] = med["py_sample_s"] / med["rust_sample_s"]
    print(json.dumps({"median": med}))


if __name__ == "__main__":
    main()
