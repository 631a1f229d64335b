# scipy's Radau on the problems pinned in crates/cnf-ode/tests/stiff.rs.
import numpy as np, scipy
from scipy.integrate import solve_ivp
def rober(t, y):
    a = -0.04 * y[0] + 1e4 * y[1] * y[2]
    c = 3e7 * y[1] * y[1]
    return [a, -a - c, c]
def vdp(t, y):
    return [y[1], 1e3 * (1 - y[0] ** 2) * y[1] - y[0]]
print("scipy", scipy.__version__)
for name, f, y0, t1, rtol, atol in [("rober", rober, [1.0, 0.0, 0.0], 1e11, 1e-6, 1e-16),
                                    ("rober", rober, [1.0, 0.0, 0.0], 1e11, 1e-6, 1e-10),
                                    ("vdp1000", vdp, [2.0, 0.0], 3000.0, 1e-5, 1e-8),
                                    ("vdp1000", vdp, [2.0, 0.0], 3000.0, 1e-6, 1e-9)]:
    s = solve_ivp(f, (0, t1), y0, method="Radau", rtol=rtol, atol=atol)
    print(name, rtol, atol, "steps", len(s.t) - 1, "nfev", s.nfev, "njev", s.njev, "nlu", s.nlu, "first step %.17e" % s.t[1], "y", list(s.y[:, -1]))
from scipy.integrate._ivp.common import select_initial_step
print("scipy's select_initial_step for Radau (order 3):")
for name, f, y0, t1, rtol, atol in [("rober", rober, [1.0, 0.0, 0.0], 1e11, 1e-6, 1e-10),
                                    ("vdp1000", vdp, [2.0, 0.0], 3000.0, 1e-5, 1e-8),
                                    ("vdp1000", vdp, [2.0, 0.0], 3000.0, 1e-6, 1e-9)]:
    y0 = np.array(y0); f0 = np.array(f(0.0, y0))
    h = select_initial_step(lambda t, y: np.array(f(t, y)), 0.0, y0, t1, np.inf, f0, 1, 3, rtol, atol)
    print(name, rtol, atol, "h0 %.17e" % h)
def vdp_jac(t, y):
    return [[0.0, 1.0], [-2e3 * y[0] * y[1] - 1.0, 1e3 * (1 - y[0] ** 2)]]
print("vdp1000 with its analytic Jacobian:")
for rtol, atol in [(1e-5, 1e-8), (1e-6, 1e-9)]:
    s = solve_ivp(vdp, (0, 3000.0), [2.0, 0.0], method="Radau", rtol=rtol, atol=atol, jac=vdp_jac)
    print("vdp1000", rtol, atol, "steps", len(s.t) - 1, "nfev", s.nfev, "njev", s.njev, "nlu", s.nlu, "first step %.17e" % s.t[1])
