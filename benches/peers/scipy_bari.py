"""scipy's BDF and Radau on the Bari test set problems (ROBER, VDPOL, HIRES, OREGO, E5) with
the tolerances, atol and correct-digits measure of cnf-ode's `bari_test_set_end_points`
(crates/cnf-ode/tests/stiff.rs): one markdown row per (problem, method), digits at rtol
1e-4 .. 1e-10, "fail" where solve_ivp gives up. For docs/ode.md's comparison with the
reference implementations of the algorithms our BDF and Radau reproduce.

    python benches/peers/scipy_bari.py crates/cnf-ode/tests/data/bari_reference.txt
"""
import numpy as np, sys
from scipy.integrate import solve_ivp
def rober(t, y):
    d0 = -0.04*y[0] + 1e4*y[1]*y[2]; d2 = 3e7*y[1]*y[1]; return [d0, -d0-d2, d2]
def hires(t, y):
    f = np.empty(8)
    f[0] = -1.71*y[0] + 0.43*y[1] + 8.32*y[2] + 0.0007
    f[1] = 1.71*y[0] - 8.75*y[1]
    f[2] = -10.03*y[2] + 0.43*y[3] + 0.035*y[4]
    f[3] = 8.32*y[1] + 1.71*y[2] - 1.12*y[3]
    f[4] = -1.745*y[4] + 0.43*y[5] + 0.43*y[6]
    f[5] = -280.0*y[5]*y[7] + 0.69*y[3] + 1.71*y[4] - 0.43*y[5] + 0.69*y[6]
    f[6] = 280.0*y[5]*y[7] - 1.81*y[6]
    f[7] = -f[6]; return f
def vdpol(t, y): return [y[1], ((1-y[0]*y[0])*y[1]-y[0])/1e-6]
def orego(t, y): return [77.27*(y[1]+y[0]*(1-8.375e-6*y[0]-y[1])), (y[2]-(1+y[0])*y[1])/77.27, 0.161*(y[0]-y[2])]
def e5(t, y):
    a,b,c,m = 7.89e-10,1.1e7,1.13e3,1e6
    p1=a*y[0]; p2=b*y[0]*y[2]; p3=c*m*y[1]*y[2]; p4=c*y[3]
    f0=-p1-p2; f1=p1-p3; f3=p2-p4; return [f0, f1, f1-f3, f3]
ref = {}
for line in open(sys.argv[1]):
    if line.startswith('#') or not line.strip(): continue
    v = line.split(); ref[v[0]] = (float(v[1]), np.array([float(x) for x in v[2:]]))
probs = [("rober", rober, [1,0,0], lambda r: 1e-10*r, False), ("vdpol", vdpol, [2,0], lambda r: 1e-4*r, False),
         ("hires", hires, [1,0,0,0,0,0,0,0.0057], lambda r: 1e-4*r, False), ("orego", orego, [1,2,3], lambda r: 1e-4*r, False),
         ("e5", e5, [1.76e-3,0,0,0], lambda r: 1.7e-24, True)]
for name, f, y0, atolf, mixed in probs:
    t1, r = ref[name]
    for method in ["BDF", "Radau"]:
        row = []
        for rtol in [1e-4,1e-5,1e-6,1e-7,1e-8,1e-9,1e-10]:
            atol = atolf(rtol)
            s = solve_ivp(f, (0, t1), np.array(y0, float), method=method, rtol=rtol, atol=atol)
            if not s.success: row.append("fail"); continue
            floor = atol/rtol if mixed else 0.0
            d = -np.log10(np.max(np.abs(s.y[:,-1]-r)/(floor+np.abs(r))))
            row.append(f"{d:.2f}")
        print(f"| {name} | scipy {method} | " + " | ".join(row) + " |", flush=True)
