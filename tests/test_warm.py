"""symloss.warm / ``symloss warm``: kernels compiled ahead of the first call, so that a later
process's first call finds them (and, for a serial kernel, does not import numba)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symloss
from symloss.cli import main
from symloss.errors import SymlossValueError
from symloss.warm import _repeated, warm

_FIRST_CALL = """
import json, sys, numpy as np, symloss
d = symloss.derive("mse_loss")
rng = np.random.default_rng(0)
x = rng.standard_normal(1000).astype(np.float32)
g = d.grad_fn(x, x[::-1].copy())
print(json.dumps({"numba": "numba" in sys.modules, "sum": float(g.astype(np.float64).sum())}))
"""


def _run(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYMLOSS_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(cache / "nb"),
           "PYTHONPATH": str(Path(symloss.__file__).parents[1])}
    env.pop("SYMLOSS_FAST", None)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("argv, message", [
    ([], "give loss names (see `symloss list`) or --all"),
    (["nope"], "unknown loss 'nope'"),
    (["--all", "mse_loss"], "give loss names or --all, not both"),
    (["--all", "--weight", "1", "2"], "--all warms every loss at its default options"),
    (["mse_loss", "--weight", "1", "2"], "mse_loss got unknown option(s) 'weight'"),
    (["mse_loss", "--dtype", "float16"], "invalid choice: 'float16'"),
])
def test_warm_usage_errors_exit_2_with_one_line(argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["warm", *argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_warm_needs_a_dtype() -> None:
    with pytest.raises(SymlossValueError, match="dtypes must name float32, float64 or both"):
        warm(symloss.derive("mse_loss"), dtypes=[])


def test_repeated_lengthens_what_runs_along_the_input_and_keeps_the_rest() -> None:
    from symloss.cases import Case

    x = np.arange(6.0).reshape(3, 2)
    t = np.array([0, 1, 1])
    case = Case("3 rows", x, t, "float64")
    w = np.array([1.0, 2.0])
    out = _repeated(case, [x, t, w], 20)
    assert out[0].shape == (12, 2) and out[1].shape == (12,) and out[2] is w
    np.testing.assert_array_equal(out[0][6:9], x)


def test_a_warmed_cache_serves_a_fresh_process_without_numba(tmp_path: Path) -> None:
    pytest.importorskip("numba")
    pytest.importorskip("llvmlite")
    if not sys.platform.startswith("linux"):
        pytest.skip("saved native entries are ELF objects (Linux)")
    if os.environ.get("SYMLOSS_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        pytest.skip("SYMLOSS_NATIVE=0")
    warmed = _run(tmp_path, "-c", "import sys; from symloss.cli import main; sys.exit(main())",
                  "warm", "mse", "--dtype", "float32", "--no-large")
    assert warmed.returncode == 0, warmed.stderr[-2000:]
    assert warmed.stdout.startswith("mse_loss: ") and f"cache {tmp_path}" in warmed.stdout
    first = _run(tmp_path, "-c", _FIRST_CALL)
    assert first.returncode == 0, first.stderr[-2000:]
    assert '"numba": false' in first.stdout  # every kernel the call needs was saved by warm
    # and the answer is the one an unwarmed process computes
    cold = _run(tmp_path / "cold", "-c", _FIRST_CALL)
    assert cold.returncode == 0, cold.stderr[-2000:]
    assert '"numba": true' in cold.stdout
    assert first.stdout.split('"sum": ')[1] == cold.stdout.split('"sum": ')[1]
