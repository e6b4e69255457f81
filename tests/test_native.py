"""symloss.native: a warm process calls the saved serial kernels without importing numba, with
numba's results bit for bit, from many threads at once, and falls back to numba wherever a
saved file is damaged.

Each case runs in fresh processes sharing one cache folder: a cold one (numba compiles the
kernels and the native entries are saved), warm ones (the entries are linked), and one with
``SYMLOSS_NATIVE=0`` (numba's path on the warm numba cache), whose results are the reference.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("llvmlite")

from symloss import native

if not sys.platform.startswith("linux"):
    pytest.skip("native entries are ELF objects (Linux)", allow_module_level=True)


def _edges(dtype: np.dtype) -> np.ndarray:
    info = np.finfo(dtype)
    e = [0.0, info.tiny, info.smallest_subnormal, 1e-30, 0.5, 1.0, 17.0, 30.0, 100.0, 700.0,
         1e30, float(info.max)]
    return np.array(e + [-v for v in e], dtype=dtype)


def _reals(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    edges = _edges(dtype)
    return np.concatenate([edges, (rng.standard_normal(n - edges.size) * 8).astype(dtype)])


def _probabilities(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    edges = np.array([0.0, 1.0, 1e-30, 1e-7, 0.5, 1 - 1e-7, 1 - 2**-24], dtype=dtype)
    return np.concatenate([edges, rng.random(n - edges.size).astype(dtype)])


def _labels(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    # hard 0/1 targets and soft ones mixed: both of a kernel's branches (and its second,
    # certified pass) run
    return np.where(rng.random(n) < 0.5, rng.integers(0, 2, n), rng.random(n)).astype(dtype)


def _logits(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    """(n/10) rows of 10 class scores, the first rows the edge values."""
    z = (rng.standard_normal(n) * 8).astype(dtype)
    edges = _edges(dtype)
    z[:edges.size] = rng.permutation(edges)
    return z.reshape(-1, 10)


def _classes(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    return rng.integers(0, 10, n // 10)  # int64 class indices


def _class_probabilities(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    # rows of probabilities, every fourth one-hot (a kernel's hard branch)
    p = rng.random((n // 10, 10)) ** 4
    p[::4] = np.eye(10)[rng.integers(0, 10, p[::4].shape[0])]
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


def _multi_hot(rng: np.random.Generator, n: int, dtype: np.dtype) -> np.ndarray:
    return _labels(rng, n, dtype).reshape(-1, 10)


#: (loss, options, how each positional array is drawn, whether hvp_fn is called too): the
#: kernels' kinds of arguments -- element-wise: two arrays, a third array (var), a scalar
#: option (delta), a compiled value check (binary_cross_entropy's probabilities:
#: symloss._bounds); class axis: 2-D arrays, a uint8 flag, int64 class indices (checked by a
#: compiled bounds check), class weights, int and float scalars, kernels returning nothing,
#: the per-class gradient's element-wise kernels (multilabel_soft_margin_loss); second-order
#: kernels of both.
CASES = [
    ("binary_cross_entropy_with_logits", {}, (_reals, _labels), False),
    ("binary_cross_entropy_with_logits", {"reduction": "sum"}, (_reals, _labels), True),
    ("mse_loss", {"reduction": "none"}, (_reals, _reals), False),
    ("huber_loss", {"delta": 0.5}, (_reals, _reals), False),
    ("binary_cross_entropy", {}, (_probabilities, _probabilities), False),
    ("gaussian_nll_loss", {}, (_reals, _reals, lambda rng, n, dt: rng.uniform(0.1, 3.0, n)
                               .astype(dt)), False),
    ("cross_entropy", {}, (_logits, _classes), True),
    ("cross_entropy", {"label_smoothing": 0.1}, (_logits, _class_probabilities), False),
    ("nll_loss", {"weight": [0.5, 1.0, 2.0, 1.5, 1.0, 0.25, 1.0, 3.0, 1.0, 1.0],
                  "ignore_index": 3}, (_logits, _classes), False),
    ("multilabel_soft_margin_loss", {}, (_logits, _multi_hot), False),
]
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
N = 1000

_SCRIPT = r"""
import json, sys, threading
import numpy as np
import symloss
from symloss import native

cases = json.loads(sys.argv[1])
data = np.load(sys.argv[2])
out = {}
derived = []
for i, loss, options, n_args, second in cases:
    d = symloss.derive(loss, **options)
    args = [data[f"{i}_{k}"] for k in range(n_args)]
    derived.append((i, d, args))
    out[f"{i}_grad"] = d.grad_fn(*args)
    out[f"{i}_loss"] = np.asarray(d.loss_fn(*args))
    if second:
        out[f"{i}_hvp"] = d.hvp_fn(*args, np.cos(args[0]))
numba_after_calls = "numba" in sys.modules

def again(results, t):  # the same calls from several threads at once
    for _ in range(3):
        for i, d, args in derived:
            results[(t, i)] = d.grad_fn(*args)

results = {}
threads = [threading.Thread(target=again, args=(results, t)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
differ = sum(r.tobytes() != out[f"{i}_grad"].tobytes()
             for (t, i), r in results.items())

import numba  # after the native path loaded numba's runtime extensions as files

allocates = numba.njit(lambda x: np.zeros(3).sum() + x)(1.0)
np.savez(sys.argv[3], **out)
print(json.dumps({"numba": numba_after_calls, "differ": differ, "calls": len(results),
                  "linked": sum(e is not None for e in native._linked.values()),
                  "entries": len(native._linked), "allocates": allocates}))
"""


def _run(folder: Path, cache: Path, name: str, only: int | None = None, cases: list = CASES,
         **env: str) -> tuple[dict, dict]:
    """Run every case of ``cases`` (:data:`CASES`' form; or case ``only``) in a fresh process
    on ``cache``: its report and results."""
    cases = [(i, loss, options, len(draws), second) for i, (loss, options, draws, second)
             in enumerate(c for c in cases for _ in DTYPES) if only in (None, i)]
    result = folder / f"{name}.npz"
    full = {**os.environ, "SYMLOSS_CACHE_DIR": str(cache), "NUMBA_CACHE_DIR": str(cache / "nb"),
            "PYTHONPATH": str(Path(native.__file__).parents[1]), **env}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(cases), str(folder / "inputs.npz"),
         str(result)], env=full, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(result) as saved:
        return json.loads(proc.stdout.splitlines()[-1]), dict(saved)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The cold, warm and numba-only runs of :data:`CASES` (:func:`shared_runs`)."""
    return shared_runs(tmp_path_factory, "native-runs", CASES)


def shared_runs(tmp_path_factory, tag: str, cases: list) -> tuple:
    """The cold, warm and numba-only runs of ``cases`` on one cache folder (a minute or so:
    the cold run compiles every kernel), made once per test session: under pytest-xdist the
    first worker to need them makes them in the folder ``tag`` the workers share, the others
    wait and read them (a module fixture is made once per worker: on 2 workers, twice)."""
    import fcntl  # (Linux: the module is skipped elsewhere)

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-N, above each worker's popen-gwK
    folder = base / tag
    with open(base / f"{tag}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        made = folder / "reports.json"
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half-way
            folder.mkdir()
            reports = [report for report, _ in _make_runs(folder, cases)]
            made.write_text(json.dumps(reports))
        reports = json.loads(made.read_text())
    results = []
    for name in ("cold", "warm", "numba"):
        with np.load(folder / f"{name}.npz") as saved:
            results.append(dict(saved))
    cold, warm, reference = zip(reports, results, strict=True)
    return folder, folder / "cache", cold, warm, reference


def _make_runs(folder: Path, cases: list) -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(20)
    arrays = {}
    i = 0
    for _, _, draws, _ in cases:
        for dtype in DTYPES:
            for k, draw in enumerate(draws):
                arrays[f"{i}_{k}"] = draw(rng, N, dtype)
            i += 1
    np.savez(folder / "inputs.npz", **arrays)
    cache = folder / "cache"
    return [_run(folder, cache, "cold", cases=cases), _run(folder, cache, "warm", cases=cases),
            _run(folder, cache, "numba", cases=cases, SYMLOSS_NATIVE="0")]


def _same(a: dict, b: dict) -> list[str]:
    return [k for k in a if not (a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
                                 and a[k].tobytes() == b[k].tobytes())]


def test_warm_process_links_every_kernel_and_never_imports_numba(runs):
    _, cache, cold, warm, reference = runs
    assert cold[0]["numba"] and reference[0]["numba"]
    report = warm[0]
    assert not report["numba"], "a warm call imported numba"
    assert report["entries"] > 0 and report["linked"] == report["entries"], report
    # the cold process links each entry right after saving it (its later calls: no numba
    # dispatch); their results are numba's (test_native_results_are_numbas_bit_for_bit)
    # (and the quick twins whose full kernels then answered: the warm one links those alone)
    assert cold[0]["linked"] == cold[0]["entries"] >= report["entries"]
    assert report["allocates"] == 1.0  # numba imported afterwards still works
    manifests = [json.loads(p.read_text()) for p in cache.glob("native_*.json")]
    assert manifests and all(m["use"] for m in manifests)
    assert {"NRT_MemInfo_alloc_aligned", "NRT_MemInfo_call_dtor"} <= {
        s for m in manifests for s in m["imports"]}  # the kernels allocate: NRT is linked
    # first- and second-order kernels of both families, 2-D arrays and int64 labels among them
    assert {"grad_v_s", "hvp_m_s", "grad_hard_v_s", "grad_soft_m_s", "loss_hard_m_s",
            "hvp_hard_v_s", "grad_flat_m_s"} <= {m["kernel"].replace("_q_s", "_s")
                                                 for m in manifests}  # or their quick twins
    assert {"f2FuIf2lf2dI", "d2FuId2ld2dId2"} <= {m["kinds"] for m in manifests}


def test_native_results_are_numbas_bit_for_bit(runs):
    _, _, cold, warm, reference = runs
    assert not _same(reference[1], warm[1])
    assert not _same(reference[1], cold[1])
    assert warm[0]["calls"] > 0 and warm[0]["differ"] == 0  # 4 threads at once
    # the cold process: its first calls numba's, then 4 threads through the entries it linked
    assert cold[0]["calls"] > 0 and cold[0]["differ"] == 0


@pytest.mark.parametrize("damage", ["truncated object", "garbled manifest", "foreign manifest"])
def test_damaged_files_fall_back_to_numba_and_are_rewritten(runs, tmp_path, damage):
    folder, cache, _, _, reference = runs
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    for path in copy.glob("native_*.o"):
        obj = path.read_bytes()
        if damage == "truncated object":
            path.write_bytes(obj[: len(obj) // 2])
    for path in copy.glob("native_*.json"):
        if damage == "garbled manifest":
            path.write_text(path.read_text()[:-5])
        elif damage == "foreign manifest":
            manifest = json.loads(path.read_text())
            manifest["imports"] = [*manifest["imports"], "not_a_symbol_anywhere"]
            path.write_text(json.dumps(manifest))
    # one case (BCE-with-logits, float32): every entry is damaged, its own are compiled again
    damaged = _run(folder, copy, f"damaged-{damage}".replace(" ", "-"), only=0)
    # numba answers, rewrites each entry and links it for the process's later calls
    assert damaged[0]["numba"] and damaged[0]["linked"] == damaged[0]["entries"] > 0
    assert not _same(damaged[1], reference[1])
    healed = _run(folder, copy, f"healed-{damage}".replace(" ", "-"), only=0)
    assert not healed[0]["numba"] and healed[0]["linked"] == healed[0]["entries"]
    assert not _same(healed[1], reference[1])


def test_symbols_reads_an_elf_symbol_table_and_rejects_a_truncated_one(runs):
    _, cache, _, _, _ = runs
    path = next(cache.glob("native_*.json"))
    manifest = json.loads(path.read_text())
    kernel, entry = (native._object_path(cache, path.stem[len("native_"):], sha256)
                     .read_bytes() for sha256 in manifest["sha256"])
    defined, undefined = native._linked_symbols([kernel, entry])
    assert manifest["symbol"] in defined and sorted(undefined) == manifest["imports"]
    # the entry calls the kernel by its symbol: defined in numba's object, not in the entry's
    calls = native.symbols(entry)[1] - {s for s in undefined}
    assert len(calls) == 1 and calls <= native.symbols(kernel)[0]
    for cut in (10, 100, len(entry) // 2):
        with pytest.raises((ValueError, struct.error, IndexError)):
            native.symbols(entry[:cut])


def test_kinds_take_only_what_an_entry_takes():
    a = np.zeros(4, np.float32)
    assert native._kinds((a, 1.0, np.zeros(4), 3, True, np.float64(2.0), np.True_)) == "fFdIBFN"
    assert native._kinds((np.zeros((2, 2)), np.zeros(3, np.uint8), np.zeros(2, np.int64),
                          np.zeros((2, 3, 4), bool))) == "d2ulb3"
    assert native._parsed("d2ulb3FI") == [("d", 2, False, False), ("u", 1, False, False),
                                          ("l", 1, False, False), ("b", 3, False, False),
                                          ("F", 0, False, False), ("I", 0, False, False)]
    assert native._kinds((np.zeros((2, 2)).T,)) is None  # Fortran order
    assert native._kinds((np.zeros(9, np.uint8)[1:].view(np.float64),)) is None  # unaligned
    assert native._kinds((a.astype(">f4"),)) is None  # byte-swapped
    assert native._kinds((np.zeros(()),)) is None  # 0-D
    assert native._kinds((np.zeros(4, np.int32),)) is None
    assert native._kinds((np.float32(1.0),)) is None
    assert native._kinds((2**70,)) is None


def test_an_entry_declines_arrays_not_of_its_kind(tmp_path, monkeypatch):
    """An entry linked for float32 arrays, called with others that have the same Python
    types (float64, strided, byte-swapped, 2-D): it declines them (its own header check) and
    numba answers."""
    import numba

    from symloss import _bounds

    monkeypatch.setenv("SYMLOSS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_linked", {})
    jitted = numba.njit(_bounds._loop_within)
    name = f"test_native@{tmp_path.name}"
    rng = np.random.default_rng(3)
    a32 = rng.random(5000).astype(np.float32)
    assert native.Kernel(name, "within", lambda: jitted)(a32, 0.0, 1.0)  # saves the entry
    native._linked.clear()  # (this process knew no entry) as a later process:
    kernel = native.Kernel(name, "within", lambda: jitted)
    for a in (a32, np.concatenate([a32, [np.nan]]).astype(np.float32), a32 * 2,
              a32.astype(np.float64), a32[::2], a32[:0]):
        assert kernel(a, 0.0, 1.0) == jitted(a, 0.0, 1.0), a
    for a in (a32.reshape(50, 100), a32.astype(">f4")):
        with pytest.raises(numba.core.errors.TypingError):  # declined: numba's answer, an error
            kernel(a, 0.0, 1.0)
    assert kernel._entries["fFF"] is not None  # the float32 calls went through the entry
    assert len(kernel._by_types) == 1


def _label_rows(out, flag, z, t, ignore, scale, twice, echo):
    # a class-axis kernel's shape: 2-D arrays, a flag array, int64 labels; returns nothing
    echo[0] = ignore
    for r in range(z.shape[0]):
        if t[r] == ignore:
            flag[0] = 1
            continue
        for k in range(z.shape[1]):
            v = z[r, k] * scale if k == t[r] else z[r, k] - 1.0
            out[r, k] = 2.0 * v if twice else v


def test_a_2d_entry_returning_nothing_reads_every_argument_as_numba(tmp_path, monkeypatch):
    """A kernel of 2-D arrays, a uint8 flag, int64 labels, int, float and bool scalars that
    returns nothing (a class-axis kernel's signature): its entry writes numba's bits, reads
    every int64 (and declines an int beyond: numba types it apart), float and bool as numba
    does, and declines 2-D arrays of another layout with the same Python types."""
    import numba

    monkeypatch.setenv("SYMLOSS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_linked", {})
    jitted = numba.njit(_label_rows)
    name = f"test_native@{tmp_path.name}"
    rng = np.random.default_rng(4)
    z = rng.standard_normal((50, 7)).astype(np.float32)
    t = rng.integers(0, 7, 50)

    def both(z, t, *scalars):
        results = []
        for fn in (kernel, jitted):
            out, flag = np.zeros(z.shape, np.float32), np.zeros(1, np.uint8)
            echo = np.zeros(1, np.int64)
            try:
                fn(out, flag, z, t, *scalars, echo)
            except Exception as exc:  # numba's answer to an int beyond int64: an error
                results.append(type(exc))
            else:
                results.append((out.tobytes(), flag.tobytes(), echo.tobytes()))
        return results

    def call(z, t, ignore, scale, twice):
        out, flag, echo = np.empty_like(z), np.zeros(1, np.uint8), np.zeros(1, np.int64)
        kernel(out, flag, z, t, ignore, scale, twice, echo)

    kernel = native.Kernel(name, "rows", lambda: jitted)
    call(z, t, 3, 0.5, True)  # numba's path: saves the entry
    native._linked.clear()  # (this process knew no entry) as a later process:
    kernel = native.Kernel(name, "rows", lambda: jitted)
    ints = [3, -100, 0, 1, -1, 2**30, -(2**31) - 5, 2**62 + 5, 2**63 - 1, -(2**63),
            2**63, 2**63 + 3, -(2**63) - 1, 2**90]
    for ignore in ints:
        for scale, twice in ((0.5, True), (np.float64(-1.5), False), (2.0, np.True_)):
            a, b = both(z, t, ignore, scale, twice)
            assert a == b, (ignore, scale, twice)
    for args in ((z[:0], t[:0]), (np.asfortranarray(z), t), (z[:, ::2], t), (z[::2], t[::2]),
                 (z, t.astype(np.int32))):
        a, b = both(*args, 3, 0.5, True)
        assert a == b
    assert kernel._entries["f2uf2lIFBl"] is not None  # went through the entry
    entry = kernel._by_types[(np.ndarray,) * 4 + (int, float, bool, np.ndarray)]
    echo = np.zeros(1, np.int64)
    assert entry((np.zeros((50, 7), np.float32), np.zeros(1, np.uint8), z, t, -(2**63), 1.0,
                  False, echo)) == 0 and echo[0] == -(2**63)
    assert entry((np.zeros((50, 7), np.float32), np.zeros(1, np.uint8), z, t, 2**63, 1.0,
                  False, echo)) == 3  # declined: numba's path
    manifests = [json.loads(p.read_text()) for p in tmp_path.glob("native_*.json")]
    # bool and numpy bool; the views with steps (numba's layout 'A') have theirs
    assert {m["kinds"] for m in manifests} == {"f2uf2lIFBl", "f2uf2lIFNl", "f2uf2~lIFBl",
                                               "f2uf2~l~IFBl"}
    assert all(m["use"] for m in manifests)


def test_making_an_entry_compiles_no_python_and_not_the_kernel_again(tmp_path, monkeypatch):
    """Saving an entry runs none of numba's Python front end (typing, lowering: ~1.4 s an
    entry when it was a ``cfunc``) and hands LLVM none of the kernel's code (compiled once
    already, by numba): its module only declares the kernel, and the kernel's object saved
    beside it is numba's, byte for byte."""
    import numba
    from numba.core import codegen, compiler

    monkeypatch.setenv("SYMLOSS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_linked", {})
    jitted = numba.njit(_label_rows)
    z = np.random.default_rng(5).standard_normal((20, 7))
    t = np.arange(20) % 7
    jitted(np.empty_like(z), np.zeros(1, np.uint8), z, t, 3, 0.5, True, np.zeros(1, np.int64))
    (signature,) = jitted.overloads
    kernel_symbol = jitted.overloads[signature].fndesc.mangled_name
    front_ends, optimised = [], []
    compile_extra = compiler.compile_extra
    optimise = codegen.CPUCodeLibrary._optimize_final_module

    def counted(*args, **kwargs):
        front_ends.append(args)
        return compile_extra(*args, **kwargs)

    def recorded(self):  # what LLVM optimises and emits: the library's linked module
        optimised.append({f.name for f in self._final_module.functions if not f.is_declaration})
        return optimise(self)

    monkeypatch.setattr(compiler, "compile_extra", counted)
    monkeypatch.setattr(codegen.CPUCodeLibrary, "_optimize_final_module", recorded)
    native.save(f"test_native@{tmp_path.name}", "rows", "d2ud2lIFBl", jitted)
    monkeypatch.undo()
    assert not front_ends
    assert optimised and not any(kernel_symbol in names for names in optimised)
    (path,) = tmp_path.glob("native_*.json")
    manifest = json.loads(path.read_text())
    assert manifest["use"]
    kernel, entry = (native._object_path(tmp_path, path.stem[len("native_"):], sha256)
                     .read_bytes() for sha256 in manifest["sha256"])
    assert kernel == bytes(jitted.overloads[signature].library._get_compiled_object())
    assert kernel_symbol in native.symbols(entry)[1] and kernel_symbol not in native.symbols(
        entry)[0]


def test_an_entry_of_a_kernel_numba_loaded_from_its_cache(tmp_path, monkeypatch):
    """numba's cache is warm, the entries' is not (a new symloss, another cache folder): the
    kernel's object comes from numba's cache file (loading the overload consumed numba's copy
    in memory), and the entry linked with it answers as numba does."""
    import numba

    from symloss import _bounds

    monkeypatch.setenv("SYMLOSS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(numba.core.config, "CACHE_DIR", str(tmp_path / "nb"))
    monkeypatch.setattr(native, "_linked", {})
    a = np.random.default_rng(6).random(3000)
    compiled = numba.njit(cache=True)(_bounds._loop_within)
    assert compiled(a, 0.0, 1.0)  # compiled, written to numba's cache
    (signature,) = compiled.overloads
    objects = bytes(compiled.overloads[signature].library._get_compiled_object())
    loaded = numba.njit(cache=True)(_bounds._loop_within)  # as a later process's dispatcher
    assert loaded(a, 0.0, 1.0) and loaded.stats.cache_hits
    with pytest.raises(RuntimeError):  # numba keeps no copy of a loaded overload's object
        loaded.overloads[signature].library._get_compiled_object()
    name = f"test_native@{tmp_path.name}"
    kernel = native.Kernel(name, "within", lambda: loaded)
    assert kernel(a, 0.0, 1.0)  # numba's path: saves the entry
    (path,) = tmp_path.glob("native_*.json")
    manifest = json.loads(path.read_text())
    assert manifest["use"] and native._object_path(
        tmp_path, path.stem[len("native_"):], manifest["sha256"][0]).read_bytes() == objects
    native._linked.clear()  # (this process knew no entry) as a later process:
    kernel = native.Kernel(name, "within", lambda: loaded)
    for b in (a, a * 2, a - 0.5, np.concatenate([a, [np.nan]])):
        assert kernel(b, 0.0, 1.0) == loaded(b, 0.0, 1.0)
    assert kernel._entries["dFF"] is not None  # went through the entry
