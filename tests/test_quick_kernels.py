"""Quick twins (symloss.fast._quick_twins, _Staged): a cold first call compiles the kernels'
first tiers alone, and whichever kernel answers, the results are the full kernel's bit for bit.

Each case runs the quick twin and the full kernel on the same arguments (the recording
``_Staged`` below): where the twin says complete (no flag), its results must be the full
kernel's, bits and flag; inputs that need a later tier (near-cancellation points, NaN and
infinite inputs) must make the twin say incomplete somewhere, and the staged call's answer is
the full kernel's there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symloss
from symloss import fast
from symloss._statements import LATER, LATER_END

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba not installed")

N = 600
SEED = 11


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# (loss, options, inputs(rng, dtype, kind)): kind "plain" (little cancellation: the twin
# should complete) or "rescue" (targets at the model's own probabilities: σ(z) − y and p − y
# cancel, so some elements need the double-double tier), or "nonfinite"
def _binary(rng, dtype, kind):
    z = rng.standard_normal(N) * 4
    if kind == "plain":
        y = (rng.random(N) < 0.5).astype(np.float64)
    elif kind == "soft":
        y = rng.random(N)
    else:
        y = _sigmoid(z.astype(dtype))
    if kind == "nonfinite":
        z[:3] = [np.nan, np.inf, -np.inf]
    return z.astype(dtype), y.astype(dtype)


def _focal(rng, dtype, kind):
    z, y = _binary(rng, dtype, kind)
    return z, y


def _poisson(rng, dtype, kind):
    z = rng.standard_normal(N)
    y = rng.poisson(2.0, N).astype(np.float64) if kind != "rescue" else np.exp(
        z.astype(dtype).astype(np.float64))
    if kind == "nonfinite":
        z[:2] = [np.nan, np.inf]
    return z.astype(dtype), y.astype(dtype)


def _classes(rng, dtype, kind, soft):
    z = rng.standard_normal((N // 6, 6)) * 3
    if kind == "rescue":  # a dominant logit: p_t − 1 cancels (test_accuracy_extremes)
        z[:, 0] = np.linspace(5, 40, z.shape[0])
    if kind == "nonfinite":
        z[0, 1], z[1, 2] = np.nan, np.inf
    z = z.astype(dtype)
    if not soft:
        return z, np.zeros(z.shape[0], np.int64) if kind == "rescue" else rng.integers(
            0, 6, z.shape[0])
    y = _softmax(z) if kind == "rescue" else rng.dirichlet(np.ones(6), z.shape[0])
    return z, y.astype(dtype)


CASES = [
    ("bce_with_logits", {}, _binary, ("plain", "soft", "rescue", "nonfinite")),
    ("sigmoid_focal_loss", {}, _focal, ("plain", "soft", "rescue")),
    ("poisson_nll_loss", {}, _poisson, ("plain", "rescue", "nonfinite")),
    ("cross_entropy", {}, lambda r, d, k: _classes(r, d, k, False), ("plain", "rescue",
                                                                     "nonfinite")),
    ("cross_entropy", {}, lambda r, d, k: _classes(r, d, k, True), ("plain", "rescue")),
    ("cross_entropy", {"label_smoothing": 0.1}, lambda r, d, k: _classes(r, d, k, False),
     ("plain", "rescue")),
]
IDS = ["bce_with_logits", "sigmoid_focal_loss", "poisson_nll_loss", "ce:hard", "ce:soft",
       "ce:label_smoothing"]


@pytest.fixture
def both(monkeypatch):
    """Every staged call runs the twin and the full kernel on copies of its arguments and
    answers with the full kernel's; the records: (twin's out, twin's flag, full's, full's)."""
    records: list[tuple[np.ndarray, bool, np.ndarray, bool]] = []

    def call(self, *args):
        runs = []
        for kernel in (self.quick, self.full):
            a = [np.full_like(args[0], 12345.0), *args[1:]]
            if self.flag_at is not None:
                a[self.flag_at] = np.zeros(1, np.uint8)
            returned = kernel(*a)
            runs.append((a[0], bool(returned if self.flag_at is None else a[self.flag_at][0])))
        (q, q_flag), (f, f_flag) = runs
        records.append((q, q_flag, f, f_flag))
        args[0][...] = f
        if self.flag_at is None:
            return f_flag
        args[self.flag_at][0] = f_flag
        return False

    monkeypatch.setattr(fast._Staged, "__call__", call)
    return records


def _calls(d, arrays, rng):
    out = [d.loss_fn(*arrays), d.grad_fn(*arrays)]
    v = rng.standard_normal(arrays[0].shape).astype(arrays[0].dtype)
    out.append(d.hvp_fn(*arrays, v))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "options", "draw", "kinds"), CASES, ids=IDS)
def test_twin_is_the_full_kernel_where_it_completes(both, name, options, draw, kinds, dtype):
    d = symloss.derive(name, reduction="sum", **options)
    rng = np.random.default_rng(SEED)
    completed = {}
    for kind in kinds:
        both.clear()
        _calls(d, draw(rng, dtype, kind), rng)
        assert both, f"{name}: no staged kernel answered (no quick twin)"
        for q, q_flag, f, f_flag in both:
            if not q_flag:  # complete: every element took its first tier
                assert not f_flag, f"{name} {kind}: the full kernel flagged, the twin not"
                assert q.tobytes() == f.tobytes(), f"{name} {kind}: other bits than the full's"
        completed[kind] = [not q_flag for _, q_flag, _, _ in both]
    # the comparison is exercised: on plain inputs the twins complete, on rescue inputs
    # at least one says incomplete (a later tier was needed)
    assert any(completed["plain"]), (name, completed)
    if "rescue" in completed and dtype == np.float32:
        assert not all(completed["rescue"]), (name, completed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_staged_call_answers_with_the_full_kernel_where_the_twin_is_incomplete(dtype):
    rng = np.random.default_rng(SEED)
    d = symloss.derive("bce_with_logits", reduction="sum")
    fk = fast.build(d)
    flavour = "v" if dtype == np.float32 else "m"
    full, quick = (getattr(fk.module, f"grad_{flavour}{q}_s") for q in ("", fast.QUICK))
    swapped = []
    for kind in ("plain", "rescue", "nonfinite"):
        z, y = _binary(rng, dtype, kind)
        staged = fast._Staged(full, quick, None,
                              lambda k, kind=kind: swapped.append(kind) if k is full else None)
        got, want = np.empty(N, dtype), np.empty(N, dtype)
        flag = staged(got, 1.0, z, y)
        assert (flag, got.tobytes()) == (full(want, 1.0, z, y), want.tobytes()), kind
        incomplete = quick(np.empty(N, dtype), 1.0, z, y)
        assert (kind in swapped) == incomplete, kind  # the full kernel answered, and stays
    assert "rescue" in swapped and "plain" not in swapped


def test_class_axis_staged_call_resets_the_flag_for_the_full_kernel():
    rng = np.random.default_rng(SEED)
    d = symloss.derive("cross_entropy")
    fk = fast.build(d)
    full, quick = (getattr(fk.module, f"grad_hard_v{q}_s") for q in ("", fast.QUICK))
    z, t = _classes(rng, np.float32, "rescue", False)
    args = (1.0, None, 1, z, t, fast._NO_TARGET["f"], fast._NO_WEIGHT, -100)

    def run(kernel):
        out, flag = np.empty(z.shape, np.float32), np.zeros(1, np.uint8)
        kernel(out, args[0], flag, *args[2:])
        return out.tobytes(), int(flag[0])

    assert run(quick)[1] == 1  # the twin: incomplete
    swapped = []
    assert run(fast._Staged(full, quick, 2, swapped.append)) == run(full)
    assert swapped == [full]


class _Kernel:
    def __init__(self, name, flag, log):
        self.name, self.flag, self.log = name, flag, log

    def __call__(self, *args):
        self.log.append(self.name)
        return self.flag


def test_staged_takes_the_full_kernel_once_it_has_run_or_is_ready(monkeypatch):
    log: list[str] = []
    table: dict[str, object] = {}
    full = _Kernel("full", False, log)
    staged = fast._Staged(full, _Kernel("quick", True, log), None, lambda k: table.update(k=k))
    assert staged(1) is False and log == ["quick", "full"] and table["k"] is full
    log.clear()
    staged = fast._Staged(full, _Kernel("quick", False, log), None, lambda k: table.update(k=k))
    assert staged(1) is False and log == ["quick"]
    # the table's closure of the two: the twin, and the full kernel where it is incomplete
    assert table["k"](2) is False and log == ["quick", "quick"]
    # a full kernel that is ready (a saved native entry, or compiled in this process): at once
    monkeypatch.setattr(fast.native.Kernel, "ready", lambda self, args: True)
    kernel = fast.native.Kernel("m", "k", lambda: full)
    log.clear()
    staged = fast._Staged(kernel, _Kernel("quick", False, log), None,
                          lambda k: table.update(k=k))
    assert staged(1) is False and log == ["full"] and table["k"] is kernel


def test_every_generated_kernel_with_a_later_tier_has_a_twin_without_it():
    for name in ("bce_with_logits", "sigmoid_focal_loss", "cross_entropy", "tweedie_loss",
                 "multilabel_soft_margin_loss"):
        source = fast._generate(symloss.derive(name))["source"]
        twins = fast._quick_twins(source)
        kernels = [b.split("(", 1)[0] for b in twins.split("\ndef ")[1:]]
        later = [k for k in kernels if fast._LazyModule(source).has_quick(k)]
        assert later, name
        for k in later:
            assert k + fast.QUICK in kernels, (name, k)
            twin = twins.split(f"\ndef {k}{fast.QUICK}(", 1)[1].split("\n@njit(", 1)[0]
            full = twins.split(f"\ndef {k}(", 1)[1].split("\n@njit(", 1)[0]
            assert LATER not in twin and LATER_END not in twin and len(twin) < len(full)


COLD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import symloss
    from symloss import fast, native
    d = symloss.derive("binary_cross_entropy_with_logits")
    rng = np.random.default_rng(3)
    z = (rng.standard_normal(1000) * 4).astype(np.float32)
    y = (rng.random(1000) < 0.5).astype(np.float32) if sys.argv[1] == "plain" else (
        1 / (1 + np.exp(-z.astype(np.float64)))).astype(np.float32)
    g = d.grad_fn(z, y)
    g2 = d.grad_fn(z, y)  # the twin again, or the full kernel once it has answered
    module = fast.build(d).module.load()
    print(json.dumps({"quick": len(module.grad_v_q_s.signatures),
                      "full": len(module.grad_v_s.signatures),
                      "same": g.tobytes() == g2.tobytes()}))
""")


def test_cold_first_call_compiles_the_quick_twin_only(tmp_path):
    def run(kind):
        folder = tmp_path / kind  # empty caches
        env = {**os.environ, "SYMLOSS_CACHE_DIR": str(folder), "NUMBA_CACHE_DIR": str(folder),
               "PYTHONPATH": str(Path(fast.__file__).parents[1])}
        out = subprocess.run([sys.executable, "-c", COLD, kind], env=env, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.splitlines()[-1])

    assert run("plain") == {"quick": 1, "full": 0, "same": True}
    # targets at σ(z): the twin says incomplete, the full kernel answers (and is compiled)
    assert run("rescue") == {"quick": 1, "full": 1, "same": True}


@pytest.mark.parametrize(("name", "draw"), [("bce_with_logits", _binary),
                                            ("cross_entropy", lambda r, d, k: _classes(r, d, k,
                                                                                       False))])
def test_parallel_twins_are_the_full_kernels_where_they_complete(both, monkeypatch, name, draw):
    monkeypatch.setattr(fast, "PARALLEL_MIN", 100)  # the parallel kernels (prange), and twins
    d = symloss.derive(name, reduction="sum")
    rng = np.random.default_rng(SEED)
    flags = []
    for kind in ("plain", "rescue"):
        both.clear()
        d.grad_fn(*draw(rng, np.float32, kind))
        for q, q_flag, f, f_flag in both:
            assert q_flag or (not f_flag and q.tobytes() == f.tobytes()), (name, kind)
        flags += [q_flag for _, q_flag, _, _ in both]
    assert False in flags and True in flags


def test_module_name_is_the_digest_of_the_compiled_text_twins_included(monkeypatch):
    # The on-disk caches (numba's, symloss.native's) are found by the module's name: were the
    # twins' printing left out of it, a change to _quick_twins would load stale kernels.
    source = fast._generate(symloss.derive("bce_with_logits"))["source"]
    module = fast._LazyModule(source)
    assert module.name == fast._module_name(fast._compiled(source))
    assert module.compiled != source  # the twins are in it
    monkeypatch.setattr(fast, "_quick_twins", lambda text: text + "\n# printed otherwise\n")
    assert fast._LazyModule(source).name != module.name
