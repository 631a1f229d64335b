"""CNFDensity against the Python CNF a user would otherwise pick, zuko's `zuko.flows.CNF` (torch,
CPU), on the same table: 8gaussians, 5000 training rows, held-out NLL on 10k fresh rows, and
the wall time of each fit, in the same run.

CNFDensity runs with its defaults (what `cnf train --data TABLE` chooses for 4000 training rows:
2x64 tanh field, batch 512, Adam 1e-3, up to 2000 iterations with early stopping on its 10%
validation split, Dopri5 at 1e-5, exact trace). zuko gets the same field widths, batch,
learning rate, weight decay and iteration budget, trained on the same 5000 rows (all of them:
it has no validation split), its own defaults for the rest (dopri45 at atol 1e-6 / rtol 1e-5,
exact trace, time embedding with 3 frequencies). `--zuko-seconds` caps its wall time (the
iterations reached are reported).

Needs torch and zuko beside cnf_rs (a separate virtual environment; docs/python.md):

    python crates/cnf-py/benches/zuko_compare.py [--zuko-iters 2000] [--zuko-seconds 1800]
"""

import argparse
import json
import os
import time

import numpy as np

from cnf_rs import CNFDensity


def eight_gaussians(n, rng):
    """FFJORD's 8gaussians (lib/toy_data.py): centres on a circle of radius 4 * 2^-1/2 ... scaled
    as there: (centre * 4 + 0.5 N(0, I)) / 1.414."""
    centres = [(1, 0), (-1, 0), (0, 1), (0, -1), (1 / np.sqrt(2), 1 / np.sqrt(2)),
               (1 / np.sqrt(2), -1 / np.sqrt(2)), (-1 / np.sqrt(2), 1 / np.sqrt(2)),
               (-1 / np.sqrt(2), -1 / np.sqrt(2))]
    c = 4.0 * np.array(centres)[rng.integers(0, 8, n)]
    return (c + 0.5 * rng.standard_normal((n, 2))) / 1.414


def fit_zuko(x, test, iters, seconds, hidden, batch, lr, weight_decay, log_every):
    import torch
    import zuko

    torch.manual_seed(0)
    flow = zuko.flows.CNF(features=2, hidden_features=hidden)
    opt = torch.optim.AdamW(flow.parameters(), lr=lr, weight_decay=weight_decay)
    data = torch.as_tensor(x, dtype=torch.float32)
    probe = torch.as_tensor(test[:2000], dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    log = []
    t0 = time.perf_counter()
    done = 0
    for it in range(iters):
        idx = torch.randint(0, len(data), (batch,), generator=gen)
        loss = -flow().log_prob(data[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        done = it + 1
        if done % log_every == 0:
            train_s = time.perf_counter() - t0
            with torch.no_grad():
                nll = -flow().log_prob(probe).mean().item()
            log.append(dict(iter=done, train_s=round(train_s, 1), nll_2k=round(nll, 4)))
            print(json.dumps({"zuko": log[-1]}), flush=True)
            t0 += time.perf_counter() - t0 - train_s  # evaluation time is not training time
        if time.perf_counter() - t0 > seconds:
            break
    fit_s = time.perf_counter() - t0
    with torch.no_grad():
        t1 = time.perf_counter()
        nll = -flow().log_prob(torch.as_tensor(test, dtype=torch.float32)).mean().item()
        score_s = time.perf_counter() - t1
    return dict(iters=done, fit_s=fit_s, test_nll=nll, score_10k_s=score_s, log=log)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--zuko-iters", type=int, default=2000)
    ap.add_argument("--zuko-seconds", type=float, default=1800)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = eight_gaussians(args.rows, rng)
    test = eight_gaussians(10_000, rng)
    print(json.dumps({"loadavg_before": os.getloadavg(), "torch": torch.__version__}), flush=True)

    t0 = time.perf_counter()
    est = CNFDensity(random_state=0, n_threads=args.threads).fit(x)
    cnf_fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cnf_nll = -est.score(test)
    cnf_score_s = time.perf_counter() - t0
    config = json.loads(est.model_.to_bytes()[0])
    training = config["training"]
    ours = dict(fit_s=cnf_fit_s, test_nll=cnf_nll, score_10k_s=cnf_score_s,
                hidden=config["mlp"]["hidden"], batch=training["batch"], lr=training["lr"],
                weight_decay=training.get("weight_decay"), loadavg=os.getloadavg()[0])
    print(json.dumps({"cnf_rs": ours}), flush=True)

    zuko = fit_zuko(x, test, args.zuko_iters, args.zuko_seconds, tuple(ours["hidden"]),
                    ours["batch"], ours["lr"], ours["weight_decay"] or 0.0, log_every=100)
    zuko["loadavg"] = os.getloadavg()[0]
    print(json.dumps({"zuko": {k: v for k, v in zuko.items() if k != "log"}}), flush=True)
    # The best a density can do here: the true 8gaussians mixture's NLL on the same points.
    centres = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1)] + [
        (s / np.sqrt(2), t / np.sqrt(2)) for s in (1, -1) for t in (1, -1)]) / 1.414
    sd = 0.5 / 1.414
    d2 = ((test[:, None, :] - centres[None]) ** 2).sum(-1)
    logp = np.log(np.mean(np.exp(-d2 / (2 * sd**2)), axis=1)) - np.log(2 * np.pi * sd**2)
    print(json.dumps({"true_density_test_nll": -logp.mean()}))


if __name__ == "__main__":
    main()
