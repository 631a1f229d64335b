"""CNFDensity.fit against `cnf train` with the same settings on the same table, alternating,
in the same run (wall time; the command's time includes reading the CSV and writing its
folder, as fit's includes its temporary checkpoints). Also checks that both kept the same model.

    cargo build --release --bin cnf
    python crates/cnf-py/benches/fit_overhead.py [--iters 200] [--rounds 3]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t = rng.uniform(0, np.pi, 5000)
    up = rng.random(5000) < 0.5
    x = np.column_stack([np.where(up, np.cos(t), 1 - np.cos(t)), np.where(up, np.sin(t), 0.5 - np.sin(t))])
    x += 0.1 * rng.standard_normal(x.shape)
    cnf = REPO / "target" / "release" / "cnf"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp) / "moons.csv"
        np.savetxt(data, x, delimiter=",", fmt="%.17g", header="x0,x1", comments="")
        for r in range(args.rounds):
            out = pathlib.Path(tmp) / f"run{r}"
            t0 = time.perf_counter()
            subprocess.run([cnf, "train", "--data", data, "--iters", str(args.iters), "--no-plots",
                            "--out", out], check=True, capture_output=True)
            t_cli = time.perf_counter() - t0
            t0 = time.perf_counter()
            est = CNFDensity(max_iter=args.iters).fit(x)
            t_py = time.perf_counter() - t0
            same = est.model_.to_bytes()[1] == CNFDensity.load(out).model_.to_bytes()[1]
            row = dict(round=r, cli_train_s=t_cli, py_fit_s=t_py, same_weights=same)
            print(json.dumps(row), flush=True)
            rows.append(row)
    med_cli = statistics.median(r["cli_train_s"] for r in rows)
    med_py = statistics.median(r["py_fit_s"] for r in rows)
    print(json.dumps({"median": {"cli_train_s": med_cli, "py_fit_s": med_py, "py_over_cli": med_py / med_cli}}))


if __name__ == "__main__":
    main()
