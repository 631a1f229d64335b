"""`cnf_rs.solve` against closed forms, observed order, and scipy's `solve_ivp`."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from cnf_rs import SolverError, solve


def decay(t, y):
    return -0.5 * y


def oscillator(t, y):
    return np.array([y[1], -y[0]])


def lotka_volterra(t, y):
    a, b, c, d = 1.5, 1.0, 3.0, 1.0
    return np.array([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])


@pytest.mark.parametrize("method", ["RK45", "DOP853", "RK23", "tsit5"])
def test_closed_forms(method):
    t = np.linspace(0, 10, 11)
    sol = solve(oscillator, (0, 10), [1.0, 0.0], method=method, rtol=1e-10, atol=1e-12, t_eval=t)
    assert sol.success and sol.y.shape == (2, 11)
    np.testing.assert_allclose(sol.y[0], np.cos(t), atol=2e-8)
    np.testing.assert_allclose(sol.y[1], -np.sin(t), atol=2e-8)
    sol = solve(decay, (0, 4), [2.0, -1.0], method=method, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol.y[:, -1], [2 * np.exp(-2), -np.exp(-2)], rtol=1e-8)


def test_backward_in_time_and_every_step_output():
    sol = solve(decay, (3, 0), [1.0], rtol=1e-9, atol=1e-12)
    assert sol.t[0] == 3 and sol.t[-1] == 0 and np.all(np.diff(sol.t) < 0)
    np.testing.assert_allclose(sol.y[0], np.exp(-0.5 * (sol.t - 3)), rtol=1e-7)
    assert sol.nfev > 0 and sol.n_accepted == len(sol.t) - 1


def test_fixed_step_rk4_has_order_four():
    errs = []
    for n in (10, 20, 40):
        sol = solve(oscillator, (0, 5), [1.0, 0.0], method="rk4", n_steps=n)
        errs.append(abs(sol.y[0, -1] - np.cos(5)))
        assert sol.nfev == 4 * n
    order = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    np.testing.assert_allclose(order, 4, atol=0.15)


@pytest.mark.parametrize("method", ["RK45", "DOP853", "RK23"])
def test_agrees_with_scipy(method):
    t = np.linspace(0, 12, 25)
    ref = solve_ivp(lotka_volterra, (0, 12), [10.0, 5.0], method=method, rtol=1e-12, atol=1e-12, t_eval=t)
    ours = solve(lotka_volterra, (0, 12), [10.0, 5.0], method=method, rtol=1e-10, atol=1e-10, t_eval=t)
    np.testing.assert_allclose(ours.y, ref.y, rtol=1e-6, atol=1e-8)
    # At scipy's default tolerances: the same method, comparable work and error.
    ref = solve_ivp(lotka_volterra, (0, 12), [10.0, 5.0], method=method, t_eval=t)
    ours = solve(lotka_volterra, (0, 12), [10.0, 5.0], method=method, t_eval=t)
    exact = solve_ivp(lotka_volterra, (0, 12), [10.0, 5.0], method="DOP853", rtol=1e-13, atol=1e-13, t_eval=t).y
    err_ours, err_ref = np.abs(ours.y - exact).max(), np.abs(ref.y - exact).max()
    assert err_ours < 10 * err_ref and ours.nfev < 2 * ref.nfev, (err_ours, err_ref, ours.nfev, ref.nfev)


def test_a_list_returning_rhs_and_errors():
    sol = solve(lambda t, y: [-y[0]], (0, 1), [1.0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sol.y[0, -1], np.exp(-1), rtol=1e-8)
    with pytest.raises(ZeroDivisionError):
        solve(lambda t, y: 1 / 0, (0, 1), [1.0])
    with pytest.raises(ValueError, match="returned 3 values for a state of 2"):
        solve(lambda t, y: np.zeros(3), (0, 1), [1.0, 2.0])
    with pytest.raises(ValueError, match="rtol must be positive"):
        solve(decay, (0, 1), [1.0], rtol=-1)
    with pytest.raises(ValueError, match="unknown|not a method"):
        solve(decay, (0, 1), [1.0], method="LSODA")
    with pytest.raises(SolverError, match="maximum number of steps"):
        solve(decay, (0, 100), [1.0], rtol=1e-12, atol=1e-14, max_steps=5)
    # y' = y^2, y(0) = 1 is 1 / (1 - t): the step size collapses at the pole t = 1.
    with pytest.raises(SolverError, match=r"step size .* below the minimum at t = 0\.9999"):
        solve(lambda t, y: y * y, (0, 2), [1.0])


def rober(t, y):
    d0 = -0.04 * y[0] + 1e4 * y[1] * y[2]
    d2 = 3e7 * y[1] * y[1]
    return np.array([d0, -d0 - d2, d2])


def test_stiff_counters_are_scipys():
    """BDF is scipy's BDF step for step (cnf-ode's `bdf_does_scipys_bdf_work`): on ROBER the
    Jacobians and LU factorisations reported are scipy's own, and the explicit methods report
    none."""
    args = (rober, (0, 1e11), [1.0, 0.0, 0.0])
    ours = solve(*args, method="BDF", rtol=1e-6, atol=1e-16)
    ref = solve_ivp(*args, method="BDF", rtol=1e-6, atol=1e-16)
    assert ours.njev > 0 and ours.nlu > 0
    assert (ours.njev, ours.nlu, len(ours.t)) == (ref.njev, ref.nlu, len(ref.t))
    radau = solve(*args, method="Radau", rtol=1e-6, atol=1e-10)
    assert radau.nlu % 2 == 0 and radau.nlu > 0 and radau.njev > 0
    explicit = solve(decay, (0, 1), [1.0], method="RK45")
    assert (explicit.njev, explicit.nlu) == (0, 0)
