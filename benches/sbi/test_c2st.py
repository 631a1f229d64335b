#!/usr/bin/env python3
"""c2st.py tested on itself with exact Gaussian draws (gaussian linear's posterior for
observation 1, N(x_o / 2, 0.05 I) in 10-D):

- two independent exact samples: accuracy 0.5 (sbibm's own test allows 0.5 +- 0.015);
- the second shifted by one posterior standard deviation along one axis: the best possible
  classifier of N(0, 1) against N(1, 1) is right with probability Phi(1/2) = 0.6915, an upper
  bound the MLP should nearly reach (0.67 .. 0.70: 0.0033 is the sd of an accuracy over
  20 000 held-out points);
- shifted by ten standard deviations in every coordinate: accuracy 1.0.

    /tmp/venv-sbi/bin/python benches/sbi/test_c2st.py
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from c2st import c2st  # noqa: E402

X_O = np.array([1.0471346, 0.5566712, -0.23618454, 0.027879834, -1.0051446,
                -0.007930746, 0.06117077, -0.29286885, -0.38539964, 0.2449614])
MEAN, SD, N = X_O / 2.0, math.sqrt(0.05), 10_000


def draws(seed):
    return (MEAN + SD * np.random.default_rng(seed).standard_normal((N, 10))).astype(np.float32)


def main():
    reference, fresh = draws(0), draws(1)
    one_sd = fresh.copy()
    one_sd[:, 0] += SD
    checks = [
        ("same distribution", c2st(reference, fresh), 0.485, 0.515),
        ("shifted 1 sd in one coordinate", c2st(reference, one_sd), 0.67, 0.5 + 0.5 * math.erf(0.5 / math.sqrt(2)) + 0.01),
        ("shifted 10 sd in every coordinate", c2st(reference, fresh + 10 * SD), 0.99, 1.0),
    ]
    failed = 0
    for name, acc, low, high in checks:
        ok = low <= acc <= high
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: C2ST {acc:.4f} (expected {low:.3f} .. {high:.3f})")
    print(f"{len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
