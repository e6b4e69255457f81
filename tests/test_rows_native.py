"""The row losses' compiled kernels (symloss.rows_compiled) through native entries: a warm
process computes cosine_embedding_loss, triplet_margin_loss and multilabel_margin_loss without
importing numba, with numba's results bit for bit; an entry takes the arrays a row kernel is
given -- read-only inputs, an option broadcast with stride 0 (numba's layout 'A') -- and only
those.

The processes (cold, warm, ``SYMLOSS_NATIVE=0``) are tests/test_native.py's, made once per test
session under a file lock (:func:`test_native.shared_runs`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("llvmlite")

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: the helper module
from symloss import native
from symloss.rows import _repeated
from test_native import _same, shared_runs

if not sys.platform.startswith("linux"):
    pytest.skip("native entries are ELF objects (Linux)", allow_module_level=True)


def _base(dtype: np.dtype) -> np.ndarray:
    """Ten rows every row argument starts with (the same in each draw: rows that coincide)."""
    return (np.random.default_rng(7).standard_normal((10, 10)) * 3).astype(dtype)


def _anchor(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    a = (rng.standard_normal((n // 10, 10)) * 3).astype(dtype)
    a[:10] = _base(dtype)
    return a


def _near(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    # rows equal to the anchor's (a distance of 0: the first tier leaves them to the second,
    # which takes copies of those rows) and rows one ulp away (cos = 1 within rounding)
    b = (rng.standard_normal((n // 10, 10)) * 3).astype(dtype)
    b[:5] = _base(dtype)[:5]
    b[5:10] = np.nextafter(_base(dtype)[5:10], np.inf)
    return b


def _far(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    c = (rng.standard_normal((n // 10, 10)) * 3).astype(dtype)
    c[:3] = _base(dtype)[:3]
    return c


def _signs(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    return rng.choice([-1.0, 1.0], n // 10).astype(dtype)


def _labels(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    # 1 to 4 distinct labels per row, then -1 (torch's end of a row's labels)
    labels = np.argsort(rng.random((n // 10, 10)), axis=1)
    return np.where(np.arange(10) < rng.integers(1, 5, (n // 10, 1)), labels, -1)


#: The row losses (tests/test_native.py's CASES form), each with its gradient, value and HVP:
#: read-only inputs, options broadcast with stride 0 (cosine's margin; triplet's margin, p
#: and eps), a uint8 label mask; rows the first tier leaves (triplet's zero distances: the
#: second tier, on copies of those rows).
CASES = [
    ("cosine_embedding_loss", {"margin": 0.5}, (_anchor, _near, _signs), True),
    ("triplet_margin_loss", {}, (_anchor, _near, _far), True),
    ("multilabel_margin_loss", {}, (_anchor, _labels), True),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return shared_runs(tmp_path_factory, "rows-native-runs", CASES)


def test_a_warm_row_loss_imports_no_numba(runs):
    _, cache, cold, warm, reference = runs
    assert cold[0]["numba"] and reference[0]["numba"]
    report = warm[0]
    assert not report["numba"], "a warm row loss imported numba"
    assert report["entries"] > 0 and report["linked"] == report["entries"], report
    assert cold[0]["linked"] == cold[0]["entries"] == report["entries"]
    manifests = [json.loads(p.read_text()) for p in cache.glob("native_*.json")]
    rows = [m for m in manifests if m["module"].startswith("symloss_rows_")]
    assert rows and all(m["use"] for m in manifests)
    kinds = {m["kinds"] for m in rows}
    # float32 and float64 first tiers on read-only inputs and a stride-0 option; the second
    # tier on writeable copies of the rows the first left
    assert {"f2bFIFf2^f2^dd~^", "d2bFIFd2^d2^dd~^", "f2bFIFf2^u2d~^",
            "f2bFIFf2f2f2f2dd", "d2bFIFd2d2d2d2dd"} <= kinds, kinds


def test_row_results_are_numbas_bit_for_bit(runs):
    _, _, cold, warm, reference = runs
    assert not _same(reference[1], warm[1])
    assert not _same(reference[1], cold[1])
    assert warm[0]["calls"] > 0 and warm[0]["differ"] == 0  # 4 threads at once
    assert cold[0]["calls"] > 0 and cold[0]["differ"] == 0


def test_kinds_of_read_only_and_strided_arrays():
    a = np.zeros((4, 3), np.float32)
    frozen = a.view()
    frozen.flags.writeable = False
    assert native._kinds((a, frozen, a[:, ::2], frozen[::2], a[:, 0])) == "f2f2^f2~f2~^f~"
    assert native._kinds((_repeated(0.5, 7), _repeated(0.5, 1))) == "d~^d^"  # 1 row: contiguous
    assert native._kinds((a.T,)) is None  # Fortran order: numba's layout 'F'
    assert native._kinds((np.zeros((4, 3)).T[::2],)) == "d2~"  # neither C nor F
    assert native._parsed("f2~^dI") == [("f", 2, True, True), ("d", 1, False, False),
                                        ("I", 0, False, False)]


def _scaled_rows(out, bad, tol, width, divisor, x, option):
    # a row kernel's shape: a result per row, its flag, scalars, a 2-D array, an option per row
    for r in range(out.shape[0]):
        s = 0.0
        for k in range(width):
            s += x[r, k] * option[r] + k
        out[r] = s / divisor
        bad[r] = s > tol


def test_entries_of_read_only_and_strided_arrays_are_numbas(tmp_path, monkeypatch):
    """Entries for read-only and strided arrays (as a row loss passes them: its inputs frozen,
    an option broadcast with stride 0, a view with steps) write numba's bits, each called with
    the overload numba dispatches to, and decline an array of the same Python type whose
    layout or writeability numba types apart."""
    import numba

    monkeypatch.setenv("SYMLOSS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_linked", {})
    jitted = numba.njit(_scaled_rows)
    name = f"test_rows_native@{tmp_path.name}"
    x = np.random.default_rng(8).standard_normal((40, 12)).astype(np.float32)
    x6 = np.ascontiguousarray(x[:, :6])
    frozen, frozen6 = x.view(), x6.view()
    frozen.flags.writeable = frozen6.flags.writeable = False
    calls = {  # kinds -> (x, option)
        "dbFIFf2^d~^": (frozen6, _repeated(0.25, 40)),
        "dbFIFf2~d~": (x[:, ::2], np.arange(80.0)[::2]),
        "dbFIFf2~^d": (frozen[:, 1::2], np.linspace(-1.0, 1.0, 40)),
        "dbFIFf2d": (x6, np.linspace(-1.0, 1.0, 40)),
    }

    def both(fn, x, option):
        out, bad = np.empty(x.shape[0]), np.zeros(x.shape[0], bool)
        fn(out, bad, 3.0, 6, 7.0, x, option)
        return out.tobytes() + bad.tobytes()

    kernel = native.Kernel(name, "rows", lambda: jitted)
    for args in calls.values():
        both(kernel, *args)  # numba's path: saves each entry
    assert len(jitted.overloads) == len(calls)  # saving compiled no overload of its own
    native._linked.clear()  # (this process knew no entry) as a later process:
    kernel = native.Kernel(name, "rows", lambda: jitted)
    for kinds, args in calls.items():
        assert both(kernel, *args) == both(jitted, *args), kinds
        assert kernel._entries[kinds] is not None  # through the entry
        assert native._kinds((np.empty(40), np.zeros(40, bool), 3.0, 6, 7.0, *args)) == kinds
    entry = kernel._entries["dbFIFf2^d~^"]
    out, bad = np.empty(40), np.zeros(40, bool)
    for wrong in ((x6, _repeated(0.25, 40)),  # writeable: numba's other overload
                  (frozen[:, :6], _repeated(0.25, 40)),  # a view with steps: 'A', not 'C'
                  (frozen6, np.full(40, 0.25)),  # a contiguous option: 'C', not 'A'
                  (frozen6, np.arange(80.0)[::2])):  # a writeable strided option
        assert entry((out, bad, 3.0, 6, 7.0, *wrong)) == 3  # declined: numba's path
    assert entry((out, bad, 3.0, 6, 7.0, *calls["dbFIFf2^d~^"])) == 0
    assert len(jitted.overloads) == len(calls)
