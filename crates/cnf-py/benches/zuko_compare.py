"""CNFDensity against the Python CNFs a user would otherwise pick, on the same table and rows:
zuko's `zuko.flows.CNF` and an FFJORD in torch (torchdiffeq), CPU, in the same run.

The table is FFJORD's 8gaussians, 5000 rows. CNFDensity fits it with its defaults (what
`cnf train --data TABLE` chooses for the table: an 80/10/10 split of the rows, 2x64 tanh field,
batch 512, Adam 1e-3, up to 2000 iterations with early stopping on the validation rows' exact
NLL, Dopri5 at 1e-5, exact trace). The peers train on the same training rows and pick their
best checkpoint on the same validation rows (`cnf_rs._native.split_rows` gives fit's split);
all are scored on the same 10k fresh test rows with the exact trace.

- zuko: `zuko.flows.CNF(features=2)` with all of zuko's defaults (2x64 ELU field with a
  3-frequency time embedding, its own adaptive Dormand-Prince at atol 1e-6 / rtol 1e-5 with the
  error's maximum over the whole batch, exact trace, adaptive-checkpoint adjoint gradients),
  trained as zuko's README shows (Adam, lr 1e-3, loss -log_prob(x).mean()), batch 512.
- FFJORD: the FFJORD paper's setting in torchdiffeq (dopri5 at rtol = atol = 1e-5, adjoint
  gradients, Hutchinson trace with Gaussian probes in training, exact trace in evaluation) on the
  same field as CNFDensity's (2x64 tanh on [x, t]), Adam lr 1e-3, batch 512.

Each peer gets a wall-time budget of `--budget` times CNFDensity's fit time (validations
included, as in ours), is validated `--checkpoints` times on the way, and keeps its best
checkpoint. Needs torch, zuko and torchdiffeq beside cnf_rs (docs/python.md):

    python crates/cnf-py/benches/zuko_compare.py [--budget 5] [--peers zuko,ffjord]
"""

import argparse
import copy
import json
import math
import os
import time

import numpy as np

from cnf_rs import CNFDensity, _native


def eight_gaussians(n, rng):
    """FFJORD's 8gaussians (lib/toy_data.py): (4 * centre + 0.5 N(0, I)) / 1.414, centres the
    8 unit vectors at multiples of 45 degrees."""
    c = 4.0 * np.array(CENTRES)[rng.integers(0, 8, n)]
    return (c + 0.5 * rng.standard_normal((n, 2))) / 1.414


CENTRES = [(1, 0), (-1, 0), (0, 1), (0, -1)] + [
    (s / math.sqrt(2), t / math.sqrt(2)) for s in (1, -1) for t in (1, -1)]


def true_nll(x):
    """The NLL of the true 8gaussians mixture on `x`: the best any model can do."""
    centres, sd = 4.0 * np.array(CENTRES) / 1.414, 0.5 / 1.414
    d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    logp = np.log(np.mean(np.exp(-d2 / (2 * sd**2)), axis=1)) - np.log(2 * np.pi * sd**2)
    return float(-logp.mean())


class Counter:
    """Counts calls of a torch module (a forward hook): the field evaluations of a solve."""

    def __init__(self, module):
        self.n = 0
        module.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.n += 1


def zuko_peer(hidden):
    """zuko's CNF with its defaults; returns (module, log_prob(x) -> tensor, the field)."""
    import zuko

    flow = zuko.flows.CNF(features=2, hidden_features=hidden)
    return flow, lambda x: flow().log_prob(x), flow.transform.ode


def ffjord_peer(hidden, tol=1e-5):
    """An FFJORD (torchdiffeq, adjoint dopri5 at `tol`, Hutchinson trace in training) on a
    tanh MLP of [x, t]; returns (module, log_prob(x) -> tensor, the field)."""
    import torch
    from torch import nn
    from torchdiffeq import odeint, odeint_adjoint

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            layers, width = [], 3
            for h in hidden:
                layers += [nn.Linear(width, h), nn.Tanh()]
                width = h
            self.net = nn.Sequential(*layers, nn.Linear(width, 2))

        def forward(self, t, x):
            return self.net(torch.cat([x, t.expand(x.shape[0], 1)], dim=1))

    class Dynamics(nn.Module):
        """d/dt [x, delta] = [v(t, x), -div v]: delta(1) = -integral of the divergence."""

        def __init__(self):
            super().__init__()
            self.field = Field()
            self.probe = None  # Gaussian probes (Hutchinson) or None (exact trace)

        def forward(self, t, state):
            x, _ = state
            with torch.enable_grad():
                if not x.requires_grad:
                    x = x.requires_grad_(True)
                v = self.field(t, x)
                if self.probe is None:
                    div = sum(torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i]
                              for i in range(x.shape[1]))
                else:
                    vjp = torch.autograd.grad(v, x, self.probe, create_graph=True)[0]
                    div = (vjp * self.probe).sum(dim=1)
            return v, -div

    dyn = Dynamics()
    times = torch.tensor([0.0, 1.0])

    def log_prob(x):
        training = torch.is_grad_enabled()
        dyn.probe = torch.randn_like(x) if training else None
        solve = odeint_adjoint if training else odeint
        extra = dict(adjoint_params=tuple(dyn.parameters())) if training else {}
        z, delta = solve(dyn, (x, torch.zeros(x.shape[0])), times, rtol=tol, atol=tol,
                         method="dopri5", **extra)
        z, delta = z[-1], delta[-1]
        base = -0.5 * (z**2).sum(dim=1) - z.shape[1] * 0.5 * math.log(2 * math.pi)
        return base - delta

    return dyn, log_prob, dyn.field


def fit_peer(name, make, train, val, test, seconds, checkpoints, batch, lr):
    """Trains a peer for `seconds` of wall time (validations included) on `train`, keeps the
    checkpoint of best validation NLL, scores `test`."""
    import torch

    torch.manual_seed(0)
    module, log_prob, field = make()
    calls = Counter(field)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    data = torch.as_tensor(train, dtype=torch.float32)
    val_t = torch.as_tensor(val, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    best, best_state, log, iters = math.inf, copy.deepcopy(module.state_dict()), [], 0
    evals_per_iter = []
    start = time.perf_counter()
    next_check = seconds / checkpoints
    while True:
        idx = torch.randint(0, len(data), (batch,), generator=gen)
        before = calls.n
        loss = -log_prob(data[idx]).mean()
        forward = calls.n - before
        opt.zero_grad()
        loss.backward()
        opt.step()
        iters += 1
        evals_per_iter.append((forward, calls.n - before))
        elapsed = time.perf_counter() - start
        if elapsed >= next_check or elapsed >= seconds:
            with torch.no_grad():
                nll = -log_prob(val_t).mean().item()
            if nll < best:
                best, best_state = nll, copy.deepcopy(module.state_dict())
            elapsed = time.perf_counter() - start
            log.append(dict(iter=iters, s=round(elapsed, 1), val_nll=round(nll, 4),
                            loss=round(loss.item(), 4)))
            print(json.dumps({name: log[-1]}), flush=True)
            next_check = elapsed + seconds / checkpoints
            if elapsed >= seconds:
                break
    fit_s = time.perf_counter() - start
    module.load_state_dict(best_state)
    t0 = time.perf_counter()
    with torch.no_grad():
        test_nll = -log_prob(torch.as_tensor(test, dtype=torch.float32)).mean().item()
    score_s = time.perf_counter() - t0
    fwd = [f for f, _ in evals_per_iter]
    tot = [t for _, t in evals_per_iter]
    return dict(iters=iters, fit_s=round(fit_s, 1), best_val_nll=best, test_nll=test_nll,
                score_10k_s=round(score_s, 2),
                field_evals_per_iter_forward_median=float(np.median(fwd)),
                field_evals_per_iter_total_median=float(np.median(tot)),
                s_per_iter=round(fit_s / iters, 2), loadavg=os.getloadavg()[0], log=log)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--budget", type=float, default=5.0,
                    help="each peer's wall time, in multiples of CNFDensity's fit time")
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--peers", default="zuko,ffjord")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-iter", type=int, default=None,
                    help="CNFDensity's max_iter (default: its own; a small value for a smoke test)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = eight_gaussians(args.rows, rng)
    test = eight_gaussians(10_000, rng)
    print(json.dumps({"loadavg_before": os.getloadavg(), "torch": torch.__version__,
                      "true_density_test_nll": true_nll(test)}), flush=True)

    t0 = time.perf_counter()
    est = CNFDensity(random_state=0, n_threads=args.threads, max_iter=args.max_iter).fit(x)
    cnf_fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cnf_nll = -est.score(test)
    cnf_score_s = time.perf_counter() - t0
    config = json.loads(est.model_.to_bytes()[0])
    training = config["training"]
    ours = dict(fit_s=round(cnf_fit_s, 1), test_nll=cnf_nll, score_10k_s=round(cnf_score_s, 2),
                hidden=config["mlp"]["hidden"], batch=training["batch"], lr=training["lr"],
                iters=training.get("iters"),
                loadavg=os.getloadavg()[0])
    print(json.dumps({"cnf_rs": ours}), flush=True)

    train_rows, val_rows, _ = _native.split_rows(len(x), 0)
    peers = dict(zuko=lambda: zuko_peer(tuple(ours["hidden"])),
                 ffjord=lambda: ffjord_peer(tuple(ours["hidden"])))
    for name in args.peers.split(","):
        result = fit_peer(name, peers[name], x[train_rows], x[val_rows], test,
                          args.budget * cnf_fit_s, args.checkpoints, ours["batch"], ours["lr"])
        print(json.dumps({name: {k: v for k, v in result.items() if k != "log"}}), flush=True)


if __name__ == "__main__":
    main()
