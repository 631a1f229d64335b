"""``solve``: cnf's ODE solvers with a Python right-hand side, shaped like scipy's ``solve_ivp``."""

import numpy as np

from . import _native

# scipy's names for the same methods.
_ALIASES = {"rk45": "dopri5", "rk23": "bs3"}


class OdeResult(dict):
    """The result of :func:`solve`, with the fields of scipy's ``OdeResult``: ``t`` (m,),
    ``y`` (n, m), ``nfev``, ``njev``, ``nlu``, ``status`` (0), ``message``, ``success`` (True: a
    failed solve raises), plus ``n_accepted`` and ``n_rejected``. ``nfev`` counts every call of
    ``f``, those of finite-difference Jacobians included (scipy's leaves those out); ``njev``
    and ``nlu`` count Jacobians and LU factorisations as scipy's do (Radau: a real and a complex
    LU per factorisation); both are 0 for the explicit methods."""

    __getattr__ = dict.__getitem__

    def __dir__(self):
        return list(self.keys())


def solve(f, t_span, y0, method="RK45", rtol=1e-3, atol=1e-6, t_eval=None, n_steps=None,
          max_steps=None):
    """Solves ``y' = f(t, y)`` over ``t_span = (t0, t1)`` from ``y0``.

    A drop-in for ``scipy.integrate.solve_ivp(f, t_span, y0, method=..., rtol=..., atol=...,
    t_eval=...)``: ``method`` is one of :data:`cnf_rs.METHODS` or scipy's ``"RK45"``
    (Dormand-Prince, ``dopri5``), ``"RK23"`` (``bs3``), ``"DOP853"``, ``"Radau"`` (``radau``,
    scipy's algorithm step for step) and ``"BDF"`` (``bdf``, likewise); the defaults
    ``rtol=1e-3, atol=1e-6`` are scipy's. ``f(t, y)`` receives ``y`` as a float64 array and
    returns the derivative (an array or a sequence). Without ``t_eval`` the output holds ``t0``
    and the end of every accepted step. Fixed-step methods (``"rk4"``, ``"euler"``, ...) take
    ``n_steps``. The solve runs without the GIL; each call of ``f`` takes it back.

    Raises ``ValueError`` for bad settings and ``SolverError`` when the integration fails (step
    size underflow, ``max_steps`` exhausted, a non-finite state); an exception raised by ``f``
    propagates as it is.
    """
    name = _ALIASES.get(str(method).lower(), str(method).lower())
    t0, t1 = (float(t) for t in t_span)
    y0 = np.asarray(y0, dtype=np.float64)
    if y0.ndim != 1:
        raise ValueError(f"y0 must be 1-D, got shape {y0.shape}")
    te = None if t_eval is None else [float(t) for t in np.asarray(t_eval).ravel()]
    t, y, (nfe, accepted, rejected, njev, nlu) = _native.solve(
        f, t0, t1, y0.tolist(), method=name, rtol=float(rtol), atol=float(atol), t_eval=te,
        steps=n_steps, max_steps=max_steps,
    )
    return OdeResult(
        t=t, y=y, nfev=nfe, njev=njev, nlu=nlu, status=0, success=True,
        message="The solver successfully reached the end of the integration interval.",
        n_accepted=accepted, n_rejected=rejected,
    )
