"""scipy's Radau and BDF on ROBER (to t = 1e11) and van der Pol (mu = 1e3, to t = 3000: MATLAB's
vdp1000, y1' = y2, y2' = mu (1 - y1^2) y2 - y1, about two relaxation cycles): one JSON
line per (problem, method, rtol) with scipy's counters and the median wall time, for the Rust
runner benches/stiff_work_precision.rs, which runs cnf-ode's stiff methods in the same run.

Evaluations are counted two ways. scipy's `nfev` leaves out the evaluations of its
finite-difference Jacobian (`num_jac` and the Jacobian's own f(t, y) call the raw function, not
the counting wrapper), so `nfe_total` counts every call of the right-hand side (a counter
around the function, in an untimed first run), `nfe_jacobian` = nfe_total - nfev is the
Jacobians' share and `nfe_excl_jacobian` = nfev. `njev` and `nlu` count every Jacobian and
every LU, as cnf-ode's `Stats::jacobians` and `factorisations` do (Radau's `nlu` counts a real
and a complex n x n LU per factorisation of its iteration matrices; the complex one costs
about four real ones).

Errors: the largest relative error at the end point, against the reference the runner passes on
stdin (one JSON object {problem: [y...]}): the Bari test set's end point for ROBER, cnf-ode's
tight solve for van der Pol (checked by the runner against this script's `check` line: Radau at
rtol 1e-10, atol 1e-13). Jacobians are scipy's finite differences, as cnf-ode's default.

Timing: the median of up to `repeats` runs after the counted one, fewer for slow cells (no run
starts once 2 s are spent on a cell); `runs` says how many.

  python3 -m venv /tmp/venv-scipy && /tmp/venv-scipy/bin/pip install scipy numpy
  echo '{"rober": [...], "vdp_mu1e3": [...]}' | /tmp/venv-scipy/bin/python benches/peers/scipy_stiff.py [repeats]
"""
import json
import sys
import time

import numpy as np
import scipy
from scipy.integrate import solve_ivp

REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
# Time spent on one cell's repeats after which no further run starts.
CELL_BUDGET_S = 2.0
# One decade looser than the runner's, so that scipy's curves reach the errors of our loosest runs.
RTOLS = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
MU = 1e3


class Counted:
    """The right-hand side with a count of every call (Jacobian columns included)."""

    def __init__(self, f):
        self.f = f
        self.calls = 0

    def __call__(self, t, y):
        self.calls += 1
        return self.f(t, y)


def rober(t, y):
    a = -0.04 * y[0] + 1e4 * y[1] * y[2]
    c = 3e7 * y[1] * y[1]
    return np.array([a, -a - c, c])


def vdp(t, y):
    return np.array([y[1], MU * (1.0 - y[0] * y[0]) * y[1] - y[0]])


# name: (f, y0, t1, atol = atol_factor * rtol)
PROBLEMS = {
    "rober": (rober, [1.0, 0.0, 0.0], 1e11, 1e-10),
    "vdp_mu1e3": (vdp, [2.0, 0.0], 3000.0, 1e-3),
}

refs = {k: np.array(v) for k, v in json.loads(sys.stdin.read()).items()}

check = solve_ivp(vdp, (0.0, 3000.0), [2.0, 0.0], method="Radau", rtol=1e-10, atol=1e-13)
print(json.dumps({"check": "vdp_mu1e3", "method": "Radau", "rtol": 1e-10, "atol": 1e-13,
                  "y": list(check.y[:, -1]), "scipy": scipy.__version__}), flush=True)

for name, (f, y0, t1, atol_factor) in PROBLEMS.items():
    ref = refs[name]
    for method in ["Radau", "BDF"]:
        for rtol in RTOLS:
            atol = rtol * atol_factor
            # A first, untimed run with the counter (a warm-up); the timed runs without it.
            counted = Counted(f)
            sol = solve_ivp(counted, (0.0, t1), y0, method=method, rtol=rtol, atol=atol)
            times = []
            while len(times) < REPEATS and sum(times) < CELL_BUDGET_S:
                t0 = time.perf_counter()
                solve_ivp(f, (0.0, t1), y0, method=method, rtol=rtol, atol=atol)
                times.append(time.perf_counter() - t0)
            y = sol.y[:, -1]
            err = float(np.max(np.abs((y - ref) / ref)))
            print(json.dumps({
                "problem": name, "solver": "scipy " + method, "rtol": rtol, "rel_error": err,
                "nfev": int(sol.nfev), "nfe_total": counted.calls,
                "nfe_jacobian": counted.calls - int(sol.nfev),
                "nfe_excl_jacobian": int(sol.nfev),
                "njev": int(sol.njev), "nlu": int(sol.nlu),
                "steps": int(len(sol.t) - 1), "ms": 1e3 * float(np.median(times)),
                "runs": len(times), "success": bool(sol.success),
            }), flush=True)
