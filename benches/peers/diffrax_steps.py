"""diffrax 0.7.2's step sequence for sampling the shared 8gaussians model (issue 15).

Prints every step the PIDController decides on (t0, h, scaled RMS error, accepted, next h)
for the f32 Dopri5 rtol=atol=1e-5 sampling solve of 10k base points (the solve of
../shared/peers/cnf_diffrax.py), then a float64 reference at rtol=atol=1e-9 of the same points
and diffrax's error against it. Writes z, diffrax's samples and the reference as CSV for the
Rust side (examples/sample_steps.rs):

Findings (issue 15): diffrax's first step is 0.01 whatever the problem (dt0=None, but
diffeqsolve wraps the term in a WrapTerm and _select_initial_step returns 0.01 for anything that
is not an ODETerm); its controller is the I controller h *= clip(0.9 err^(-1/5), 1, 10) after an
accepted step (clip to [0.2, 0.9] after a rejection), err the RMS over the whole state of
y_err / (atol + rtol max(|y0|, |y1|)), accepted when err < 1.

  $PY benches/peers/diffrax_steps.py [--model ../shared/reference/cnf_8g_diffrax_1000it.npz]
        [--out /tmp/cnf_sample_ref.csv] [--seed 5] [--n 10000]
"""
import argparse
import sys

import jax

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="../shared/reference/cnf_8g_diffrax_1000it.npz")
ap.add_argument("--out", default="/tmp/cnf_sample_ref.csv")
ap.add_argument("--seed", type=int, default=5)
ap.add_argument("--n", type=int, default=10_000)
ARGS = ap.parse_args()


class Func(eqx.Module):
    layers: list

    def __init__(self, dtype):
        k = jr.split(jr.PRNGKey(0), 4)
        sizes = [(3, 64), (64, 64), (64, 64), (64, 2)]
        self.layers = [eqx.nn.Linear(i, o, key=kk, dtype=dtype) for (i, o), kk in zip(sizes, k)]

    def __call__(self, t, z):
        h = jnp.concatenate([z, jnp.full((1,), t, dtype=z.dtype)])
        for layer in self.layers[:-1]:
            h = jnp.tanh(layer(h))
        return self.layers[-1](h)


def load(dtype):
    m = Func(dtype)
    d = np.load(ARGS.model)
    for i in range(len(m.layers)):
        m = eqx.tree_at(lambda mm: mm.layers[i].weight, m, jnp.asarray(d["W%d" % i], dtype=dtype))
        m = eqx.tree_at(lambda mm: mm.layers[i].bias, m, jnp.asarray(d["b%d" % i], dtype=dtype))
    return m


# Log every controller decision: wrap PIDController.adapt_step_size (called once per attempted
# step, inside diffrax's jitted loop) with a host callback.
_orig = diffrax.PIDController.adapt_step_size
LOG = []


def _log(t0, t1, err, keep, next_t0, next_t1):
    LOG.append((float(t0), float(t1 - t0), float(err), bool(keep), float(next_t1 - next_t0)))


def adapt(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
    out = _orig(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state)
    keep, next_t0, next_t1 = out[0], out[1], out[2]
    y = jnp.maximum(jnp.abs(y0), jnp.abs(y1_candidate))
    err = jnp.sqrt(jnp.mean((y_error / (self.atol + y * self.rtol)) ** 2))
    jax.debug.callback(_log, t0, t1, err, keep, next_t0, next_t1)
    return out


diffrax.PIDController.adapt_step_size = adapt


def solve(model, z, rtol, atol, max_steps=4096):
    term = diffrax.ODETerm(lambda t, zz, m: jax.vmap(m, in_axes=(None, 0))(t, zz))
    sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), t0=1.0, t1=0.0, dt0=None, y0=z, args=model,
                              stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                              max_steps=max_steps)
    return sol.ys[-1], sol.stats


def main():
    z64 = np.random.RandomState(ARGS.seed).randn(ARGS.n, 2)
    z32 = z64.astype(np.float32)
    m32 = load(jnp.float32)
    LOG.clear()
    xs, stats = solve(m32, jnp.asarray(z32), 1e-5, 1e-5)
    xs = np.asarray(xs, dtype=np.float64)
    print("diffrax f32 rtol=atol=1e-5: steps %d accepted %d rejected %d"
          % (int(stats["num_steps"]), int(stats["num_accepted_steps"]), int(stats["num_rejected_steps"])))
    print("  %-10s %-12s %-10s %-4s %-12s" % ("t0", "h", "err", "ok", "next h"))
    for t0, h, err, keep, nh in LOG:
        print("  %-10.6f %-12.6e %-10.4f %-4s %-12.6e" % (t0, h, err, "yes" if keep else "NO", nh))
    # Reference: the same points (f32 values, exactly representable in f64) in f64 at 1e-9.
    m64 = load(jnp.float64)
    LOG.clear()
    ref, rstats = solve(m64, jnp.asarray(z32.astype(np.float64)), 1e-9, 1e-9, max_steps=100_000)
    ref = np.asarray(ref)
    print("reference f64 rtol=atol=1e-9: steps %d" % int(rstats["num_steps"]))
    e = np.abs(xs - ref)
    print("diffrax f32 1e-5 vs reference: max abs %.3e, rms %.3e, max per-point norm %.3e\n"
          % (e.max(), np.sqrt(np.mean(e ** 2)), np.sqrt((e ** 2).sum(1)).max()))
    with open(ARGS.out, "w") as f:
        f.write("z0,z1,diffrax0,diffrax1,ref0,ref1\n")
        for a, b, c in zip(z32, xs, ref):
            f.write(",".join(repr(float(v)) for v in (a[0], a[1], b[0], b[1], c[0], c[1])) + "\n")
    print("wrote", ARGS.out, file=sys.stderr)


if __name__ == "__main__":
    main()
