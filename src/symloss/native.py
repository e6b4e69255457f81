"""Warm first calls without importing numba: a serial kernel's machine code, saved once as an
object file, linked in later processes with llvmlite's ORC JIT and called through ctypes.

Why: issue 8 asks for a first ``grad_fn`` ≤ 0.2 s in a fresh process whose caches are warm.
numba's own cache cannot get there: a warm first call (BCE-with-logits, cProfile, session 19)
spent 0.33-0.64 s importing numba and 1.09 s loading the cached kernel, 0.93 s of that in
numba's 252 ``load_additional_registries`` calls (one imports scipy.linalg). llvmlite alone
imports and initialises in ~30 ms and links a kernel's object code in a few ms.

* **Saved on the cold path.** When numba has compiled a serial kernel for a signature (the
  cold path, unchanged), :func:`save` saves two objects for it. The kernel's is numba's own,
  byte for byte: the one numba compiled in this process (and keeps for its cache), or the one
  numba's cache holds where the overload was loaded from there. The entry's is a C-ABI
  function generated from the signature alone (no list of kernels), built as LLVM IR with
  numba's code generation helpers and compiled by numba's codegen: it takes the call's
  arguments as one tuple (its object's address) and reads each item itself -- an array's data
  pointer and shape (and strides, for a view with steps) from numpy's array header after
  checking its dtype, layout and writeability, a float's, int's or bool's value from its
  object: cheaper than any conversion ctypes or Python could make --, passes each array as
  the structure ``numba.carray`` makes of it, calls the kernel by its symbol as numba calls one
  compiled function from another, and returns the kernel's flag as 0/1 (0 for a kernel that
  returns nothing: a class-axis kernel writes its flag into an array), 2 where the kernel
  raised (a failed allocation). So numba's Python front end does not run for an entry and the
  kernel's code is not compiled a second time (a ``cfunc`` that called the kernel did both:
  ~1.4 s an entry). The objects go to ``native_<key>_<sha256>.o`` and a manifest (entry
  symbol, argument kinds, the objects' SHA-256 and the symbols they need from elsewhere) to
  ``native_<key>.json`` in :func:`symloss.cache.cache_dir`, each written atomically. The key:
  the kernel module's name (a digest of its source and helpers), the kernel's name and
  argument kinds, this module's source (how an entry reads its arguments), numba's,
  llvmlite's and numpy's versions, the interpreter's ABI, the target triple and the host
  CPU's name and features, and the ``NUMBA_*`` settings. numba compiles the entry with the
  target it compiles the kernel with; where that is not the host's (``NUMBA_CPU_NAME``), the
  kernel's code holds this process's addresses (numba's "dynamic globals"), or a symbol cannot
  be resolved, the manifest says ``"use": false`` and the kernel stays numba's.
* **Loaded on the warm path.** :func:`load` reads the manifest, checks each object against
  its SHA-256, reads their undefined symbols from the ELF symbol tables and resolves each one
  explicitly: numba's NRT allocator (the kernels allocate: flags, index and row buffers) from
  its ``_nrt_python`` extension and numba's C helpers from ``_helperlib``, each loaded as an
  extension file under its own name, so the numba package is not imported (a later ``import
  numba`` finds the same, once-initialised modules), C library and Python API functions from
  the process (the kernel's object holds numba's Python wrapper too, never called). It links
  both objects as one library into one process-wide LLJIT and calls the entry through ctypes,
  which releases the GIL as the ``nogil`` kernels do; NRT allocates with ``PyMem_RawMalloc``
  (no GIL needed) and counts references atomically, so threads may call one entry at once. The
  kernel's machine code is numba's own: its results are numba's bit for bit
  (tests/test_native.py).

Used for every serial kernel of :mod:`symloss.fast` -- element-wise and class-axis, first and
second order --, the row losses' kernels (:mod:`symloss.rows_compiled`: every tier, all
serial) and the compiled value checks (:mod:`symloss._bounds`): a warm first call of any
catalogue loss imports no numba (n = 1000: ~0.07 s instead of ~1.1 s for an element-wise loss;
see benchmarks/README.md for the class-axis ones; the row losses' 0.38-0.43 s -> 0.06 s,
``speed.py --first-call-only 3 --only cosine_embedding_loss multilabel_margin_loss
triplet_margin_loss``, load 0.3-0.9, 3d5da43 and this code alternating, twice each).

Costs: the cold first call saves each entry -- its small LLVM module compiled, both objects
written: 0.02-0.06 s an entry (timed around :func:`save`; as a ``cfunc`` that compiled the
kernel again, 1.0-2.5 s) -- and links it at once, so that the process's later calls take it
too. ``benchmarks/speed.py --first-call-only 3 --only binary_cross_entropy_with_logits nll_loss
cross_entropy multi_margin_loss`` (cold once, n = 1000, float32, load 4-5; two alternating runs
each), ``cfunc`` entries (61888a5) -> these: nll_loss 7.0, 5.3 -> 2.9, 1.9 s,
cross_entropy 11.4, 10.1 -> 8.7, 6.7 s, binary_cross_entropy_with_logits 7.4, 5.7 -> 5.7,
4.0 s, multi_margin_loss 5.7, 5.4 -> 2.4, 3.2 s; what is left is numba compiling the kernels
(``SYMLOSS_NATIVE=0``: the same within the noise). A warm first call: 0.03-0.08 s either way.
A warm call costs ~0.5 µs more than numba's dispatch (one ctypes argument, the tuple), paid for
not importing numba (``speed.py --sizes 100 --no-first-call``: see benchmarks/README.md).

Limits: serial kernels only (below :data:`symloss.fast.PARALLEL_MIN` elements; the parallel
ones need numba's threading layer); aligned arrays of 1 to 9 dimensions of float32, float64,
uint8, int64 or bool in native byte order, C-contiguous or neither C- nor Fortran-contiguous
(numba's layouts 'C' and 'A': a row loss's inputs and its options broadcast with stride 0),
writeable or read-only (each its own kind: an entry calls the overload numba dispatches the
same arguments to), and float/int/bool scalars (an int within int64); ELF objects
(Linux). Anything else -- no manifest, a truncated or altered object or manifest, an unresolved
symbol, a link error, an exception inside the kernel, other argument types -- and the call
takes numba's path, as before. ``SYMLOSS_NATIVE=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import importlib.util
import itertools
import json
import os
import re
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import cache

__all__ = ["Kernel", "enabled", "load", "save"]

_ENABLED = os.environ.get("SYMLOSS_NATIVE", "1").strip().lower() not in ("0", "false", "no",
                                                                          "off")
#: The manifest's layout; a manifest of another format is not read.
FORMAT = 6
#: ``NUMBA_*`` settings that do not change a serial kernel's code (all others are in the key).
_IRRELEVANT = frozenset({"NUMBA_CACHE_DIR", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER"})
#: Argument kinds, one letter each: an aligned array of float32 ('f'), float64 ('d'), uint8
#: ('u'), int64 ('l') or bool ('b') -- followed by its number of dimensions where that is 2 to 9
#: ('f2': a 2-D float32 array), then '~' where it is neither C- nor Fortran-contiguous (numba's
#: layout 'A': a view with steps, a row loss's option broadcast with stride 0) and '^' where it
#: is read-only (numba types both apart, and an entry calls the overload numba dispatched to:
#: 'f2^' a read-only C-contiguous 2-D float32 array) -- or a scalar: a float or numpy float64
#: ('F'), an int within int64 ('I'), a bool ('B') or numpy bool ('N'). Array kinds by letter:
#: numba's dtype, numpy's dtype; scalar kinds: numba's type.
_ARRAY_KINDS = {"f": "float32", "d": "float64", "u": "uint8", "l": "int64", "b": "bool_"}
_SCALAR_KINDS = {"F": "float64", "I": "int64", "B": "boolean", "N": "boolean"}
#: An array's kind letter by its dtype's type character (what numpy's header holds).
_BY_CHAR = {np.dtype(name).char: kind for kind, name in _ARRAY_KINDS.items()}
_TOKEN = re.compile(r"([a-zA-Z])([2-9]?)(~?)(\^?)")
#: numba's C helper tables, by the prefix their symbols carry in compiled code.
_EXTENSIONS = {"NRT_": "numba.core.runtime._nrt_python", "numba_": "numba._helperlib"}

_lock = threading.RLock()


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.RLock()  # a thread that held it is not in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
_llvm: list[Any] = []  # [llvmlite.binding, its LLJIT], made once
_linked: dict[str, Any] = {}  # key -> _Entry or None, once per process
_names = itertools.count()
_helpers: dict[str, dict[str, int]] = {}
_process: list[ctypes.CDLL] = []
_context: list[tuple[Any, ...]] = []
_NDARRAY = np.ndarray
_F64 = np.float64
_BOOL = np.bool_


def enabled() -> bool:
    """Whether the native path is tried (``SYMLOSS_NATIVE=0`` turns it off)."""
    return _ENABLED


def _kinds(args: Sequence[Any]) -> str | None:
    """The argument kinds of a kernel call, or ``None`` where an entry does not take them."""
    out = []
    for a in args:
        t = type(a)
        if t is _NDARRAY:
            kind = _BY_CHAR.get(a.dtype.char)
            flags = a.flags.num
            if (kind is None or not 1 <= a.ndim <= 9 or not flags & _ALIGNED
                    or a.dtype.byteorder not in "=|"):
                return None
            if not flags & _C and flags & _F:  # numba's layout 'F': no entry takes it
                return None
            out.append(f"{kind}{a.ndim if a.ndim > 1 else ''}{'' if flags & _C else '~'}"
                       f"{'' if flags & _WRITEABLE else '^'}")
        elif t is float or t is _F64:
            out.append("F")
        elif t is bool:
            out.append("B")
        elif t is _BOOL:
            out.append("N")
        elif t is int and -(2**63) <= a < 2**63:
            out.append("I")
        else:
            return None
    return "".join(out)


def _parsed(kinds: str) -> list[tuple[str, int, bool, bool]]:
    """``kinds`` as (letter, dimensions, strided, read-only) per argument; a scalar has 0
    dimensions."""
    return [(letter, 0 if letter in _SCALAR_KINDS else int(nd or 1), bool(strided),
             bool(readonly)) for letter, nd, strided, readonly in _TOKEN.findall(kinds)]


def _flags_test(strided: bool, readonly: bool) -> tuple[int, int]:
    """(mask, value): the header flags of an array an entry takes, ``flags & mask == value``:
    aligned; C-contiguous, or (strided) neither C- nor Fortran-contiguous; writeable unless
    read-only -- the arrays numba types as that kind (:func:`_kinds`)."""
    if strided:
        return _C | _F | _ALIGNED | _WRITEABLE, _ALIGNED | (0 if readonly else _WRITEABLE)
    return _C | _ALIGNED | _WRITEABLE, _C | _ALIGNED | (0 if readonly else _WRITEABLE)


def _llvmlite() -> tuple[Any, Any]:
    """llvmlite's binding, initialised for the host, and the process's LLJIT (made once)."""
    with _lock:
        if not _llvm:
            import llvmlite.binding as ll

            ll.initialize_native_target()
            ll.initialize_native_asmprinter()
            _llvm.extend((ll, ll.create_lljit_compiler()))
        return _llvm[0], _llvm[1]


def _key_context() -> tuple[Any, ...]:
    """What besides the kernel decides its machine code: versions, target, settings."""
    if not _context:
        import llvmlite

        spec = importlib.util.find_spec("numba")  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("numba is not installed")
        root = Path(next(iter(spec.submodule_search_locations)))
        numba_version = hashlib.sha256((root / "_version.py").read_bytes()).hexdigest()
        settings = tuple(sorted((k, v) for k, v in os.environ.items()
                                if k.startswith("NUMBA_") and k not in _IRRELEVANT))
        # this module's source: how an entry reads its arguments is written here
        own = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
        _context.append((FORMAT, own, numba_version, llvmlite.__version__, np.__version__,
                         sys.implementation.cache_tag, sys.abiflags, host(), settings))
    return _context[0]


def host() -> tuple[str, str, str]:
    """The target triple and the host CPU's name and features, as numba's JIT codegen sees
    them without ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` (its ``magic_tuple``)."""
    ll = _llvmlite()[0]
    return ll.get_process_triple(), ll.get_host_cpu_name(), ll.get_host_cpu_features().flatten()


def _key(module: str, name: str, kinds: str) -> str:
    return cache.digest(repr((module, name, kinds, _key_context())).encode())


def _extension(name: str) -> Any:
    """numba's C extension ``name``: the loaded one, or its file loaded without the package."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("numba is not installed")
    *folders, leaf = name.split(".")[1:]
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*folders)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = base / f"{leaf}{suffix}"
        if path.is_file():
            break
    else:
        raise ImportError(f"no extension file for {name} in {base}")
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    found = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert found is not None
    module = importlib.util.module_from_spec(found)
    loader.exec_module(module)
    if name.endswith("_nrt_python"):
        module.memsys_use_cpython_allocator()  # as numba.core.runtime.nrt does on import
    return module


def _address(symbol: str) -> int | None:
    """The address an undefined symbol of a saved object is linked to, or ``None``."""
    for prefix, name in _EXTENSIONS.items():
        if symbol.startswith(prefix):
            with _lock:
                table = _helpers.get(prefix)
                if table is None:
                    table = _helpers[prefix] = dict(_extension(name).c_helpers)
            address = table.get(symbol[len(prefix):])
            return int(address) if address else None
    if not _process:
        _process.append(ctypes.CDLL(None))
        try:
            _process.append(ctypes.CDLL("libm.so.6"))
        except OSError:
            pass
    for lib in _process:
        try:
            return ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
        except AttributeError:
            continue
    return None


def symbols(obj: bytes) -> tuple[set[str], set[str]]:
    """The global symbols an ELF64 little-endian object defines, and those it needs (raises
    ``ValueError`` or ``struct.error`` for anything else, a truncated file included)."""
    if obj[:4] != b"\x7fELF" or obj[4:6] != b"\x02\x01":
        raise ValueError("not a little-endian ELF64 object")
    (shoff,) = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    if shentsize != 64:
        raise ValueError("unexpected ELF section header size")
    # (sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, ...)
    sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + 64 * i) for i in range(shnum)]
    defined: set[str] = set()
    undefined: set[str] = set()
    for section in sections:
        if section[1] != 2:  # SHT_SYMTAB
            continue
        strings = sections[section[6]]
        start, end = strings[4], strings[4] + strings[5]
        if end > len(obj) or section[4] + section[5] > len(obj):
            raise ValueError("truncated ELF object")
        for at in range(section[4], section[4] + section[5], 24):
            st_name, st_info, _, st_shndx, _, _ = struct.unpack_from("<IBBHQQ", obj, at)
            if st_info >> 4 == 0 or st_name == 0:  # a local or unnamed symbol
                continue
            stop = obj.index(b"\0", start + st_name, end)
            symbol = obj[start + st_name:stop].decode("ascii")
            (undefined if st_shndx == 0 else defined).add(symbol)
    return defined, undefined


#: numpy's array header as an entry reads it (``PyArrayObject_fields``, 8-byte words): the
#: data pointer, ``nd``, the pointers to the dimensions and the strides, the dtype
#: (``PyArray_Descr``: its type character and byte order at bytes 25 and 26) and the flags
#: (``NPY_ARRAY_C_CONTIGUOUS`` = 1, ``NPY_ARRAY_F_CONTIGUOUS`` = 2, ``NPY_ARRAY_ALIGNED`` =
#: 0x100, ``NPY_ARRAY_WRITEABLE`` = 0x400: numba types an array of another layout, an unaligned
#: or a read-only one apart). :func:`_header_ok` checks all of it in every process that saves
#: or links an entry.
_DATA, _ND, _DIMS, _STRIDES, _DESCR, _FLAGS = 2, 3, 4, 5, 7, 8
_TYPE, _ORDER = 25, 26
_C, _F, _ALIGNED, _WRITEABLE = 0x1, 0x2, 0x100, 0x400


def _header(a: np.ndarray) -> tuple[int, int, tuple[int, ...], tuple[int, ...], int, int,
                                    bytes]:
    """What an entry reads of ``a``: data, nd, shape, strides, its layout, aligned and
    writeable flags, dtype's type and order."""
    head = (ctypes.c_ssize_t * 9).from_address(id(a))
    descr = ctypes.string_at(head[_DESCR], 32)
    nd = head[_ND] & 0xFFFFFFFF
    shape = tuple((ctypes.c_ssize_t * nd).from_address(head[_DIMS])) if 0 < nd <= 9 else ()
    strides = tuple((ctypes.c_ssize_t * nd).from_address(head[_STRIDES])) if 0 < nd <= 9 else ()
    return (head[_DATA], nd, shape, strides, head[_FLAGS] & (_C | _F | _ALIGNED | _WRITEABLE),
            descr[_TYPE], descr[_ORDER:_ORDER + 1])


def _header_ok() -> bool:
    """Whether numpy's array header is laid out as the entries read it (a 64-bit,
    little-endian process; checked on arrays of each kind: 1-D and 2-D, contiguous or not,
    aligned or not)."""
    if ctypes.sizeof(ctypes.c_void_p) != 8 or sys.byteorder != "little":
        return False
    w = _ALIGNED | _WRITEABLE
    for name in _ARRAY_KINDS.values():
        dtype = np.dtype(name)
        fact = (ord(dtype.char), dtype.byteorder.encode())
        size = dtype.itemsize
        a = np.zeros(4, dtype)
        b = np.zeros((2, 3), dtype)
        frozen = b.view()
        frozen.flags.writeable = False
        if (_header(a) != (a.ctypes.data, 1, (4,), (size,), _C | _F | w, *fact)
                or _header(b) != (b.ctypes.data, 2, (2, 3), (3 * size, size), _C | w, *fact)
                or _header(b[:, ::2])[1:5] != (2, (2, 2), (3 * size, 2 * size), w)
                or _header(b.T)[2:5] != ((3, 2), (size, 3 * size), _F | w)
                or _header(frozen)[4] != _C | _ALIGNED
                or _header(np.broadcast_to(a[:1], (5,)))[2:5] != ((5,), (0,), _ALIGNED)):
            return False
        if size > 1:
            unaligned = np.zeros(4 * size + 1, np.uint8)[1:].view(dtype)
            if _header(unaligned)[4] != _C | _F | _WRITEABLE:
                return False
    return True


#: CPython's int from 3.12 on: ``lv_tag`` (the digit count << 3 | the sign: 0 +, 1 zero, 2 −)
#: where 3.11 has ``ob_size`` (the signed digit count); 30-bit digits from byte 24 either way.
_LONG_TAG = sys.version_info >= (3, 12)


def _int_value(x: int) -> int | None:
    """``x`` read from its object as an entry reads it: ``None`` beyond three digits."""
    tag = ctypes.c_ssize_t.from_address(id(x) + 16).value
    n, negative = (tag >> 3, tag & 3 == 2) if _LONG_TAG else (abs(tag), tag < 0)
    if n > 3:
        return None
    m = sum(d << (30 * k) for k, d in enumerate((ctypes.c_uint32 * n).from_address(id(x) + 24)))
    return -m if negative else m


def _objects_ok() -> bool:
    """Whether a tuple, a float, an int, a bool and a numpy float64 and bool are laid out as the
    entries read them (the items' addresses from word 3 of a tuple, a float's value at byte
    16, an int's as :func:`_int_value` reads it, a numpy bool's byte at 16)."""
    ints = [0, 1, -1, 7, -100, 2**30 - 1, 2**30, -(2**31) - 5, 2**60 + 3, 2**62, 2**63 - 1,
            -(2**63), 2**64 + 1, True, False]
    floats = [0.5, -1e300, np.float64(2.5), float(2**-1074)]
    items = (*ints, *floats, np.True_, np.False_)
    words = (ctypes.c_ssize_t * (3 + len(items))).from_address(id(items))
    return (list(words[3:]) == [id(x) for x in items]
            and all(_int_value(x) == int(x) for x in ints)
            and all(ctypes.c_double.from_address(id(x) + 16).value == x for x in floats)
            and ctypes.c_uint8.from_address(id(np.True_) + 16).value == 1
            and ctypes.c_uint8.from_address(id(np.False_) + 16).value == 0)


class _Entry:
    """A linked entry: ``entry(args)`` is 0 or 1 (the kernel's flag), 2 where it raised, 3
    where an argument is not of its kind (an array: its dimensions, C-contiguous and aligned,
    its dtype in native byte order; an int beyond int64).
    The arguments go as one tuple, the entry reads each item itself (an array's header, a
    float's or int's value): ctypes converts each argument it is given in ~0.13 µs (9 of a
    class-axis kernel's: 1.2 µs more than numba's whole dispatch), and an array's data pointer
    read in Python (``a.ctypes.data``) costs ~1 µs. The caller passes only the Python types the
    entry was made for (:class:`Kernel` keys them by type; :func:`_kinds`)."""

    def __init__(self, address: int, kinds: str, tracker: Any) -> None:
        self.fn = ctypes.CFUNCTYPE(ctypes.c_uint8, ctypes.py_object)(address)
        self._tracker = tracker  # the linked code lives as long as this

    def __call__(self, args: tuple[Any, ...]) -> int:
        return int(self.fn(args))


def load(module: str, name: str, kinds: str) -> _Entry | None:
    """The saved entry of kernel ``name`` of module ``module`` for argument ``kinds``, linked
    (once per process), or ``None`` wherever it cannot be used (see the module docstring)."""
    if not _ENABLED:
        return None
    try:
        key = _key(module, name, kinds)
    except Exception:  # no llvmlite, no numba: numba's path decides
        return None
    with _lock:
        if key in _linked:
            return _linked[key]  # type: ignore[no-any-return]
        try:
            entry = _link(key, kinds)
        except Exception:  # anything unexpected: numba's path, as before
            entry = None
        _linked[key] = entry
        return entry


def _saved(module: str, name: str, kinds: str) -> bool:
    """Whether an entry was saved for ``kinds`` (its manifest exists; not linked, nor
    counted among the entries looked up)."""
    try:
        return (cache.cache_dir() / f"native_{_key(module, name, kinds)}.json").exists()
    except Exception:  # no llvmlite, no numba: numba's path decides
        return False


def _object_path(folder: Path, key: str, sha256: str) -> Path:
    return folder / f"native_{key}_{sha256[:16]}.o"


def _linked_symbols(objects: Sequence[bytes]) -> tuple[set[str], set[str]]:
    """The global symbols ``objects`` define together, and those they need from elsewhere."""
    defined: set[str] = set()
    undefined: set[str] = set()
    for obj in objects:
        d, u = symbols(obj)
        defined |= d
        undefined |= u
    return defined, undefined - defined


def _read(folder: Path, key: str) -> tuple[dict[str, Any], list[bytes]]:
    """The manifest saved under ``key`` and its objects (the kernel's, the entry's), checked
    against each other (each object's SHA-256, the entry symbol and the undefined symbols);
    raises where they do not agree or cannot be read. A manifest that says ``"use": false``
    comes with no object."""
    manifest = json.loads((folder / f"native_{key}.json").read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError("not a manifest of this format")
    if manifest.get("use") is False:
        return manifest, []
    objects = []
    for sha256 in manifest["sha256"]:
        obj = _object_path(folder, key, str(sha256)).read_bytes()
        if hashlib.sha256(obj).hexdigest() != sha256:
            raise ValueError("an object is not the one the manifest names")
        objects.append(obj)
    defined, undefined = _linked_symbols(objects)
    if manifest["symbol"] not in defined or sorted(undefined) != manifest["imports"]:
        raise ValueError("the manifest does not describe its objects")
    return manifest, objects


def _link(key: str, kinds: str) -> _Entry | None:
    manifest, objects = _read(cache.cache_dir(), key)
    if manifest.get("use") is not True or manifest.get("kinds") != kinds:
        return None
    if not (_header_ok() and _objects_ok()):
        return None
    symbol, imports = manifest["symbol"], manifest["imports"]
    addresses = {s: _address(s) for s in imports}
    if any(a is None for a in addresses.values()):
        return None
    ll, jit = _llvmlite()
    builder = ll.JITLibraryBuilder()
    for obj in objects:
        builder.add_object_img(obj)
    for s, address in addresses.items():
        builder.import_symbol(s, address)
    # a library's name is the JIT's once: the same entry linked again (a test's later
    # "process") takes another
    tracker = builder.export_symbol(symbol).link(jit, f"symloss_{key}_{next(_names)}")
    return _Entry(tracker[symbol], kinds, tracker)


def _kernel_object(kernel: Any, signature: tuple[Any, ...]) -> bytes:
    """The object code numba runs for ``kernel``'s overload ``signature``: the one it compiled
    in this process (kept for its cache), else the one its cache holds (the overload was loaded
    from there, and loading consumed the in-memory copy)."""
    library = kernel.overloads[signature].library
    try:
        return bytes(library._get_compiled_object())
    except (ValueError, RuntimeError):  # loaded from numba's cache
        pass
    cached = kernel._cache
    data = cached._cache_file.load(cached._index_key(signature, kernel.targetctx.codegen()))
    _, kind, payload = data[0]  # CompileResult._reduce: (name, "object", (object, bitcode))
    if kind != "object":
        raise ValueError(f"numba's cache holds {kind!r} code, not an object")
    return bytes(payload[0])


def _entry_module(context: Any, fndesc: Any, kinds: str, name: str) -> Any:
    """The entry in LLVM IR: ``uint8 name(PyObject *args)`` reads the items of the call's
    argument tuple -- each array from numpy's header, each scalar from its object --, returns
    3 where one is not of its kind, else calls the kernel ``fndesc`` by its symbol, as numba
    calls one compiled function from another (its calling convention and argument packing),
    each array passed as the structure ``numba.carray`` makes of it, and returns the kernel's
    flag as 0/1 (0 where it returns nothing), 2 where it raised. Built with numba's code
    generation helpers alone: no Python front end (typing, inlining, lowering: ~1.4 s an entry
    when the entry was a ``cfunc``) and none of the kernel's code, which stays in numba's own
    object."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.np.arrayobj import make_array, populate_array

    i1, i8, i32, i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)

    def const(value: int, ty: Any = i64) -> Any:
        return ir.Constant(ty, value)

    module = context.create_module(name)
    fn = ir.Function(module, ir.FunctionType(i8, [i8.as_pointer()]), name)
    builder = ir.IRBuilder(fn.append_basic_block("read"))

    def load(address: Any, offset: int, ty: Any) -> Any:  # the ``ty`` at address + offset
        return builder.load(builder.inttoptr(builder.add(address, const(offset)), ty.as_pointer()))

    def equal(a: Any, b: Any) -> Any:
        return builder.icmp_unsigned("==", a, b)

    ok = cgutils.alloca_once_value(builder, const(1, i1))

    def require(condition: Any) -> None:
        builder.store(builder.and_(builder.load(ok), condition), ok)

    items = builder.ptrtoint(fn.args[0], i64)
    parsed = _parsed(kinds)
    values: list[Any] = []
    arrays = []
    for i, ((letter, nd, strided, readonly), argty) in enumerate(zip(parsed, fndesc.argtypes,
                                                                       strict=True)):
        at = load(items, 8 * (3 + i), i64)  # the tuple's item i
        if nd:
            dtype = np.dtype(_ARRAY_KINDS[letter])
            descr = load(at, 8 * _DESCR, i64)
            mask, value = _flags_test(strided, readonly)
            require(equal(builder.and_(load(at, 8 * _ND, i64), const(0xFFFFFFFF)), const(nd)))
            require(equal(builder.and_(load(at, 8 * _FLAGS, i64), const(mask)), const(value)))
            require(equal(load(descr, _TYPE, i8), const(ord(dtype.char), i8)))
            require(equal(load(descr, _ORDER, i8), const(ord(dtype.byteorder), i8)))
            arrays.append((i, at, nd, strided, argty))
            values.append(None)  # read below, once every argument is known to fit
        elif letter == "F":
            values.append(load(at, 16, ir.DoubleType()))
        elif letter == "N":
            values.append(builder.icmp_unsigned("!=", load(at, 16, i8), const(0, i8)))
        else:  # an int (or bool) within int64, read from its 30-bit digits
            tag = load(at, 16, i64)
            if _LONG_TAG:
                n = builder.lshr(tag, const(3))
                negative = equal(builder.and_(tag, const(3)), const(2))
            else:
                negative = builder.icmp_signed("<", tag, const(0))
                n = builder.select(negative, builder.neg(tag), tag)
            require(builder.icmp_unsigned("<=", n, const(3)))
            m = cgutils.alloca_once_value(builder, const(0))
            for k in range(3):
                with builder.if_then(builder.icmp_unsigned(">", n, const(k))):
                    digit = builder.zext(load(at, 24 + 4 * k, i32), i64)
                    if k == 2:
                        require(builder.icmp_unsigned("<=", digit, const(8)))
                    builder.store(builder.or_(builder.load(m), builder.shl(digit, const(30 * k))),
                                  m)
            magnitude = builder.load(m)
            limit = builder.select(negative, const(2**63), const(2**63 - 1))
            require(builder.icmp_unsigned("<=", magnitude, limit))
            v = builder.select(negative, builder.neg(magnitude), magnitude)
            values.append(v if letter == "I" else builder.icmp_unsigned("!=", v, const(0)))
    call = fn.append_basic_block("call")
    decline = fn.append_basic_block("decline")
    builder.cbranch(builder.load(ok), call, decline)
    builder.position_at_end(decline)
    builder.ret(const(3, i8))
    builder.position_at_end(call)
    for i, at, nd, strided, argty in arrays:  # as numba.carray makes it: no meminfo
        dims = builder.inttoptr(load(at, 8 * _DIMS, i64), i64.as_pointer())
        shape = [builder.load(builder.gep(dims, [const(k)])) for k in range(nd)]
        itemsize = const(context.get_abi_sizeof(context.get_data_type(argty.dtype)))
        strides, step = [], itemsize
        if strided:  # the array's own strides (reversed, as C strides are made below)
            steps = builder.inttoptr(load(at, 8 * _STRIDES, i64), i64.as_pointer())
            strides = [builder.load(builder.gep(steps, [const(k)])) for k in reversed(range(nd))]
        else:  # C strides
            for extent in reversed(shape):
                strides.append(step)
                step = builder.mul(step, extent)
        array = make_array(argty)(context, builder)
        populate_array(array, data=builder.inttoptr(load(at, 8 * _DATA, i64),
                                                    context.get_data_type(argty.dtype)
                                                    .as_pointer()),
                       shape=shape, strides=strides[::-1], itemsize=itemsize, meminfo=None)
        values[i] = array._getvalue()
    callee = context.declare_function(module, fndesc)
    status, result = context.call_conv.call_function(builder, callee, fndesc.restype,
                                                     fndesc.argtypes, values)
    with builder.if_then(status.is_error, likely=False):
        builder.ret(const(2, i8))
    if fndesc.restype == types.none:
        builder.ret(const(0, i8))
    else:
        builder.ret(builder.zext(builder.icmp_unsigned("!=", result, ir.Constant(result.type, 0)),
                                 i8))
    return module


def _compile(kernel: Any, kinds: str) -> tuple[dict[str, Any], list[bytes]]:
    """The manifest and the object code of ``kernel``'s entry for ``kinds`` (numba imported):
    the kernel's own object, as numba compiled it, and the entry's, which calls it."""
    from numba import types
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    context = cpu_target.target_context
    if context.codegen().magic_tuple() != host():
        return {"use": False, "why": "numba compiles for another CPU than the host's"}, []
    if not (_header_ok() and _objects_ok()):
        return {"use": False, "why": "numpy's or Python's objects are not as the entry reads "
                "them"}, []
    parsed = _parsed(kinds)
    # the kernel's signature for these kinds, as numba's dispatch types the arguments
    signature = tuple(types.Array(getattr(types, _ARRAY_KINDS[letter]), nd,
                                  "A" if strided else "C", readonly=readonly)
                      if nd else getattr(types, _SCALAR_KINDS[letter])
                      for letter, nd, strided, readonly in parsed)
    kernel.compile(signature)  # (compiled already: the call that saves it has run)
    fndesc = kernel.overloads[signature].fndesc
    if kernel.overloads[signature].library.has_dynamic_globals:  # this process's addresses
        return {"use": False, "why": "the kernel's code holds this process's addresses"}, []
    if (tuple(fndesc.argtypes) != signature
            or not (fndesc.restype == types.none or isinstance(fndesc.restype,
                                                               (types.Boolean, types.Integer)))):
        return {"use": False, "why": f"a kernel of {fndesc.argtypes} -> {fndesc.restype}"}, []
    name = f"symloss_entry_{re.sub(r'[^0-9A-Za-z]', '_', kinds)}_{next(_names)}_" + (
        fndesc.mangled_name)
    with global_compiler_lock:  # numba's codegen is not thread-safe
        library = context.codegen().create_library(name)
        library.enable_object_caching()
        library.add_ir_module(_entry_module(context, fndesc, kinds, name))
        library.finalize()
    objects = [_kernel_object(kernel, signature), bytes(library._get_compiled_object())]
    defined, undefined = _linked_symbols(objects)
    missing = sorted(s for s in undefined if _address(s) is None)
    if name not in defined or missing:
        return {"use": False, "why": f"unresolved symbols {missing}"}, []
    return {"use": True, "symbol": name, "imports": sorted(undefined),
            "sha256": [hashlib.sha256(obj).hexdigest() for obj in objects]}, objects


def _settled(folder: Path, key: str) -> bool:
    """Whether the manifest saved under ``key`` needs no rewriting: it says the kernel has no
    entry, or it and its object agree (a missing, unreadable or altered one is written again;
    an intact one that does not link in this process is not compiled again)."""
    try:
        _read(folder, key)
    except Exception:
        return False
    return True


def save(module: str, name: str, kinds: str, kernel: Any) -> None:
    """Compile and save the entry of ``kernel`` (numba's dispatcher of kernel ``name`` of
    module ``module``, already compiled for ``kinds``), unless a manifest is there already;
    this process's miss is forgotten, so that :func:`load` links it next. Failing to, for any
    reason, only means later processes import numba as before."""
    if not _ENABLED:
        return
    try:
        with _lock:
            key = _key(module, name, kinds)
            if key in _linked and _linked[key] is None:
                del _linked[key]
            folder = cache.cache_dir()
            if _settled(folder, key):
                return
            manifest, objects = _compile(kernel, kinds)
            for sha256, obj in zip(manifest.get("sha256", ()), objects, strict=True):
                cache._write_atomic(_object_path(folder, key, sha256), obj)
            cache._write_atomic(folder / f"native_{key}.json", json.dumps(
                {"format": FORMAT, "module": module, "kernel": name, "kinds": kinds,
                 **manifest}))
    except Exception:  # the numba path has answered; nothing is lost
        return


_MISSING = object()


class Kernel:
    """Kernel ``name`` of the generated module ``module``: called through its saved native
    entry where there is one for the arguments' kinds, else through numba (whose dispatcher
    ``numba_kernel()`` returns, importing numba on first use), saving the entry for the next
    process."""

    def __init__(self, module: str, name: str, numba_kernel: Callable[[], Any]) -> None:
        self.module = module
        self.name = name
        self._numba_kernel = numba_kernel
        self._dispatcher: Any = None
        self._entries: dict[str, _Entry | None] = {}
        #: Linked entries by the arguments' Python types (the entry checks the arrays
        #: itself): the first entry linked for those types.
        self._by_types: dict[tuple[type, ...], Any] = {}
        self._saved: set[str] = set()

    def dispatcher(self) -> Any:
        """numba's dispatcher of the kernel (imports numba on first use)."""
        if self._dispatcher is None:
            with _lock:
                if self._dispatcher is None:
                    self._dispatcher = self._numba_kernel()
        return self._dispatcher

    def ready(self, args: Sequence[Any]) -> bool:
        """Whether a call with ``args`` compiles nothing: it links a saved entry, or numba has
        compiled the kernel in this process (:class:`symloss.fast._Staged` asks)."""
        if self._by_types.get(tuple(map(type, args))) is not None:
            return True
        kinds = _kinds(args)
        if kinds is not None and _saved(self.module, self.name, kinds):
            entry = self._entries.get(kinds, _MISSING)
            if entry is _MISSING:
                entry = self._entries[kinds] = load(self.module, self.name, kinds)
            if entry is not None:
                return True
        return self._dispatcher is not None and bool(self._dispatcher.signatures)

    def __call__(self, *args: Any) -> bool:
        fn = self._by_types.get(tuple(map(type, args)))
        if fn is not None:  # the hot path: ~0.5 µs besides the kernel's work
            status = fn(args)
            if status < 2:
                return bool(status == 1)
        kinds = _kinds(args)
        entry: Any = None
        if kinds is not None:
            entry = self._entries.get(kinds, _MISSING)
            if entry is _MISSING:
                entry = self._entries[kinds] = load(self.module, self.name, kinds)
            if entry is not None:
                status = entry(args)
                if status < 2:
                    self._by_types.setdefault(tuple(map(type, args)), entry.fn)
                    return status == 1
        dispatcher = self._dispatcher or self.dispatcher()
        result = bool(dispatcher(*args))
        if kinds is not None and entry is None and kinds not in self._saved:
            self._saved.add(kinds)
            save(self.module, self.name, kinds, dispatcher)
            # linked now: this process's next calls skip numba's dispatch and _kinds too
            self._entries[kinds] = load(self.module, self.name, kinds)
        return result
