"""Any function of a Derivation may be called from many threads and processes at once.

Each scenario runs in a fresh interpreter, so an abort (numba's workqueue layer terminates the
process on concurrent parallel launches) fails the test instead of killing pytest. Every
scenario compares with the results of one thread, bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from symloss import fast

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba not installed")

SRC = str(Path(__file__).resolve().parents[1] / "src")

_PRELUDE = """
import sys, threading
import numpy as np
import symloss
from symloss import fast

def case(name, n, dtype):
    d = symloss.derive(name)
    rng = np.random.default_rng(n)
    if d.spec.family == "class_axis":
        x = (rng.standard_normal((n // 8, 8)) * 5).astype(dtype)
        y = rng.integers(0, 8, n // 8)
    else:
        x = (rng.standard_normal(n) * 5).astype(dtype)
        y = (rng.random(n) < 0.5).astype(dtype)
    v = rng.standard_normal(x.shape).astype(dtype)
    return d, x, y, v

def run(d, x, y, v):
    return (d.grad_fn(x, y), d.loss_fn(x, y), d.hvp_fn(x, y, v))

def same(a, b):
    return all(np.array_equal(p, q, equal_nan=True) for p, q in zip(a, b))

CASES = [("bce_with_logits", 1_200_000, np.float32), ("ce", 1_200_000, np.float64),
         ("bce_with_logits", 1000, np.float64), ("ce", 80_000, np.float32)]
"""

_THREADS = _PRELUDE + """
for name, n, dtype in CASES:
    d, x, y, v = case(name, n, dtype)
    ref = run(d, x, y, v)
    results, errors = [], []
    def work():
        try:
            for _ in range(3):
                results.append(run(d, x, y, v))
        except BaseException as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 18 and all(same(r, ref) for r in results), name
print("OK")
"""

_POOL = _PRELUDE + """
import multiprocessing as mp

def child(i):
    name, n, dtype = CASES[i % len(CASES)]
    return run(*case(name, n, dtype))

if __name__ == "__main__":
    refs = [run(*case(*c)) for c in CASES]  # the parent uses the kernels before forking
    with mp.get_context(sys.argv[1]).Pool(3) as pool:
        got = pool.map(child, range(8))
    assert all(same(g, refs[i % len(CASES)]) for i, g in enumerate(got))
    print("OK")
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    argv = [sys.executable, "-c", textwrap.dedent(code), *args]
    if cwd is not None:  # spawn re-imports the main script: it must be a file
        script = cwd / "scenario.py"
        script.write_text(textwrap.dedent(code))
        argv = [sys.executable, str(script), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=timeout,
                          cwd=cwd)


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def test_threads_give_the_results_of_one_thread():
    _ok(_run(_THREADS))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pools_give_the_results_of_one_process(method, tmp_path):
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} here")
    _ok(_run(_POOL, method, cwd=tmp_path))


_FRESH_CACHE = """
import threading, numpy as np, symloss
from symloss import fast
fast.MIN_SIZE = 0
d = symloss.derive("bce_with_logits")
x = np.linspace(-30, 30, 64); y = (x > 0).astype(float)
errors, out = [], []
def first_call():
    try:
        out.append(d.grad_fn(x, y))
    except BaseException as exc:
        errors.append(repr(exc))
ts = [threading.Thread(target=first_call) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
assert not errors, errors
with fast.disabled():
    ref = d.grad_fn(x, y)
assert all(np.allclose(o, ref, rtol=1e-15, atol=0) for o in out)
print(fast._cache_dir())
print("OK")
"""


def test_eight_threads_first_call_in_a_fresh_cache(tmp_path):
    cache = tmp_path / "cache"
    proc = _run(_FRESH_CACHE, env={"SYMLOSS_CACHE_DIR": str(cache)})
    _ok(proc)
    assert proc.stdout.splitlines()[0] == str(cache)
    left = sorted(p.name for p in cache.iterdir() if not p.name.startswith("__pycache__"))
    # complete files only: the kernel modules, their plans and native entries (no writer's
    # temporary file)
    assert left and all((n.startswith("symloss_fast_") and n.endswith(".py"))
                        or (n.startswith(("plan_", "native_")) and n.endswith(".json"))
                        or (n.startswith("native_") and n.endswith(".o")) for n in left), left


def test_unwritable_home_reuses_one_private_folder(tmp_path):
    home = tmp_path / "home"
    home.write_text("a file, not a folder: nothing can be created under it")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmp), "SYMLOSS_CACHE_DIR": "", "XDG_CACHE_HOME": ""}
    code = "from symloss import cache; print(cache.cache_dir()); print('OK')"
    first, second = _run(code, env=env), _run(code, env=env)
    _ok(first)
    _ok(second)
    folder = first.stdout.splitlines()[0]
    assert folder == second.stdout.splitlines()[0] == str(tmp / f"symloss-{os.getuid()}")
    assert [p.name for p in tmp.iterdir()] == [f"symloss-{os.getuid()}"]


def test_a_foreign_or_shared_tmp_folder_is_not_used(tmp_path):
    home = tmp_path / "home"
    home.write_text("a file, not a folder: nothing can be created under it")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / f"symloss-{os.getuid()}").mkdir(mode=0o777)
    (tmp / f"symloss-{os.getuid()}").chmod(0o777)  # world-writable: someone could plant code
    env = {"HOME": str(home), "TMPDIR": str(tmp), "SYMLOSS_CACHE_DIR": "", "XDG_CACHE_HOME": ""}
    code = "from symloss import cache; print(cache.cache_dir()); print('OK')"
    proc = _run(code, env=env)
    _ok(proc)
    folder = Path(proc.stdout.splitlines()[0])
    assert folder.parent == tmp and folder.name != f"symloss-{os.getuid()}"
    assert not folder.exists()  # a last-resort folder is removed when the process exits


def test_the_probe_leaves_nothing_behind(tmp_path, monkeypatch):
    from symloss import cache

    folder = tmp_path / "c"
    monkeypatch.setenv("SYMLOSS_CACHE_DIR", str(folder))
    assert cache.cache_dir() == folder
    assert list(folder.iterdir()) == []
