"""The README's five-line Python example runs as printed."""

import math
import re

from conftest import REPO


def test_readme_example_runs(capsys):
    text = (REPO / "README.md").read_text()
    section = text[text.index("## From Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) == 5
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    # X is Gaussian with covariance A^T A = [[1, 0.5], [0.5, 0.5]] (det 0.25): its expected
    # log-likelihood is -log(2 pi) - 0.5 log(0.25) - 1 = -2.1448; the fit is within 0.1 of it.
    score = float(out.split()[0])
    assert abs(score - (-math.log(2 * math.pi) - 0.5 * math.log(0.25) - 1)) < 0.1
