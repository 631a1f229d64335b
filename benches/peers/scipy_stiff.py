"""scipy's Radau and BDF on ROBER (to t = 1e11) and van der Pol (mu = 1e3, to t = 3000): one JSON
line per (problem, method, rtol) with scipy's counters and the median wall time, for the Rust
runner benches/stiff_work_precision.rs, which runs cnf-ode's stiff methods in the same run.

Errors: ROBER against the Bari test set's reference end point; van der Pol against a Radau
solve at rtol = atol = 1e-12 (printed as the `reference` line first). Jacobians are scipy's
finite differences, as cnf-ode's default.

  python3 -m venv /tmp/venv-scipy && /tmp/venv-scipy/bin/pip install scipy numpy
  /tmp/venv-scipy/bin/python benches/peers/scipy_stiff.py [repeats]
"""
import json
import sys
import time

import numpy as np
import scipy
from scipy.integrate import solve_ivp

REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ROBER_REF = np.array([0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050])
MU = 1e3


def rober(t, y):
    a = -0.04 * y[0] + 1e4 * y[1] * y[2]
    c = 3e7 * y[1] * y[1]
    return np.array([a, -a - c, c])


def vdp(t, y):
    return np.array([y[1], MU * ((1.0 - y[0] * y[0]) * y[1] - y[0])])


PROBLEMS = {
    "rober": (rober, [1.0, 0.0, 0.0], 1e11, 1e-10),
    "vdp_mu1e3": (vdp, [2.0, 0.0], 3000.0, 1e-3),
}

vdp_ref = solve_ivp(vdp, (0.0, 3000.0), [2.0, 0.0], method="Radau", rtol=1e-12, atol=1e-12).y[:, -1]
print(json.dumps({"reference": "vdp_mu1e3", "y": list(vdp_ref), "scipy": scipy.__version__}))
REFS = {"rober": ROBER_REF, "vdp_mu1e3": vdp_ref}

for name, (f, y0, t1, atol_factor) in PROBLEMS.items():
    for method in ["Radau", "BDF"]:
        for rtol in [1e-4, 1e-5, 1e-6, 1e-7, 1e-8]:
            times = []
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                sol = solve_ivp(f, (0.0, t1), y0, method=method, rtol=rtol, atol=rtol * atol_factor)
                times.append(time.perf_counter() - t0)
            y = sol.y[:, -1]
            ref = REFS[name]
            err = float(np.max(np.abs((y - ref) / ref)))
            print(json.dumps({
                "problem": name, "solver": "scipy " + method, "rtol": rtol, "rel_error": err,
                "nfe": int(sol.nfev), "njev": int(sol.njev), "nlu": int(sol.nlu),
                "steps": int(len(sol.t) - 1), "ms": 1e3 * float(np.median(times)),
                "success": bool(sol.success),
            }))
