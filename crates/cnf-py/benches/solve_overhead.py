"""Per-call overhead of cnf_rs.solve with a Python right-hand side, against scipy's solve_ivp
on the same problem and method, in the same run: wall time per right-hand-side evaluation, and
the time of a bare Python call of the right-hand side for scale.

    python crates/cnf-py/benches/solve_overhead.py
"""

import json
import statistics
import time

import numpy as np
from scipy.integrate import solve_ivp

import cnf_rs


def lotka_volterra(t, y):
    return np.array([1.5 * y[0] - y[0] * y[1], -3.0 * y[1] + y[0] * y[1]])


def timed(f, reps=7):
    out, times = None, []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main():
    y0 = np.array([10.0, 5.0])
    for method, rtol in [("RK45", 1e-3), ("RK45", 1e-8), ("DOP853", 1e-8)]:
        ours, t_ours = timed(lambda: cnf_rs.solve(lotka_volterra, (0, 15), y0, method=method, rtol=rtol, atol=rtol * 1e-3))
        ref, t_ref = timed(lambda: solve_ivp(lotka_volterra, (0, 15), y0, method=method, rtol=rtol, atol=rtol * 1e-3))
        _, t_call = timed(lambda: [lotka_volterra(0.0, y0) for _ in range(1000)])
        print(json.dumps(dict(
            method=method, rtol=rtol,
            cnf_rs_us_per_eval=1e6 * t_ours / ours.nfev, cnf_rs_nfev=ours.nfev, cnf_rs_s=t_ours,
            scipy_us_per_eval=1e6 * t_ref / ref.nfev, scipy_nfev=int(ref.nfev), scipy_s=t_ref,
            bare_python_call_us=1e3 * t_call,
        )))


if __name__ == "__main__":
    main()
