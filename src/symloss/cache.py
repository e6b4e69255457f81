"""Where the fast path's generated kernels live, and how they are loaded safely from many
threads and processes at once.

* **One folder.** ``$SYMLOSS_CACHE_DIR``, else ``$XDG_CACHE_HOME/symloss``, else
  ``~/.cache/symloss``. Where that cannot be written (an unwritable or missing ``HOME``), one
  private folder in the system's temporary directory, ``symloss-<uid>``, reused by every later
  process (checked to be ours, not a link and not writable by others); only if even that is
  impossible a fresh temporary folder, removed when the process exits. Writability is probed
  with a uniquely named file, so concurrent callers never race on a shared probe.
* **Atomic, per-writer files.** A kernel module is written to a temporary name unique to the
  process, thread and call, then renamed over its final name: a reader never sees half a file
  and two writers never share a temporary file.
* **Parallel kernels, one caller at a time.** numba's ``workqueue`` threading layer (chosen in
  :func:`select_threading_layer`, because the OpenMP layer spin-waits and starves torch) aborts
  the process when two threads launch parallel kernels at once. Every loaded parallel kernel is
  wrapped: the first caller runs it, a concurrent caller runs its serial twin (same code,
  ``range`` for ``prange``, the same results) instead of waiting. A forked child starts with the
  gate open.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "code_digest", "load_module", "read_plan", "select_threading_layer",
           "write_plan"]

_dir_lock = threading.Lock()
_dirs: dict[tuple[str | None, ...], Path] = {}
_load_lock = threading.RLock()
_parallel_gate = threading.Lock()
_loaded: dict[str, Any] = {}


def _reset_after_fork() -> None:
    global _parallel_gate, _load_lock, _dir_lock
    _parallel_gate = threading.Lock()
    _load_lock = threading.RLock()
    _dir_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def select_threading_layer() -> None:
    """numba's ``workqueue`` layer unless ``NUMBA_THREADING_LAYER`` says otherwise.

    numba's OpenMP layer spin-waits after each kernel, and so does torch's: in one process
    they starve each other. The workqueue layer sleeps when idle; it is not thread-safe, which
    the gate in :func:`load_module` makes up for (with any layer).
    """
    if "NUMBA_THREADING_LAYER" not in os.environ:
        import numba

        numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]


def _writable(path: Path) -> bool:
    """Whether files can be created in ``path`` (probed with a uniquely named file)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return True


def _preferred() -> Path | None:
    root = os.environ.get("SYMLOSS_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError, OSError):  # no home directory at all
            return None
    return Path(base) / "symloss"


def _private_tmp() -> Path | None:
    """``<tmp>/symloss-<uid>``: created 0700, or reused if it is ours and private."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = Path(tempfile.gettempdir()) / f"symloss-{uid}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != uid):
        return None  # a link, a file, or someone else's: never write code there
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return path if _writable(path) else None


def cache_dir() -> Path:
    """The folder for generated kernels (see the module docstring); one per process and
    environment, created once."""
    key = (os.environ.get("SYMLOSS_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME"),
           os.environ.get("HOME"))
    with _dir_lock:
        found = _dirs.get(key)
        if found is not None and found.is_dir():
            return found
        path = _preferred()
        if path is not None:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError:
                path = None
        if path is None or not _writable(path):
            path = _private_tmp()
        if path is None:
            path = Path(tempfile.mkdtemp(prefix="symloss-"))
            atexit.register(shutil.rmtree, path, True)
        _dirs[key] = path
        return path


def _gated(parallel: Callable[..., Any], serial: Callable[..., Any]) -> Callable[..., Any]:
    """``parallel`` for one caller at a time; ``serial`` for anyone who comes meanwhile."""

    def kernel(*args: Any) -> Any:
        gate = _parallel_gate
        if gate.acquire(blocking=False):
            try:
                return parallel(*args)
            finally:
                gate.release()
        return serial(*args)

    kernel.__name__ = getattr(parallel, "__name__", "kernel")
    kernel.__wrapped__ = parallel  # type: ignore[attr-defined]
    return kernel


class _GatedModule:
    """A loaded kernel module whose parallel kernels go through the gate."""

    def __init__(self, module: Any) -> None:
        self._module = module
        for name, value in vars(module).items():
            twin = getattr(module, f"{name}_s", None)
            if callable(value) and twin is not None and callable(twin):
                setattr(self, name, _gated(value, twin))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _write_atomic(path: Path, text: str | bytes) -> None:
    tmp = path.with_name(
        f".{path.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex}.tmp")
    try:
        if isinstance(text, bytes):
            with open(tmp, "xb") as fb:
                fb.write(text)
        else:
            with open(tmp, "x", encoding="utf-8") as f:
                f.write(text)
        os.replace(tmp, path)  # atomic: nobody imports half a file
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def load_module(source: str, name: str) -> Any:
    """Write ``source`` as ``<cache>/<name>.py`` (atomically) and import it once per process.

    Parallel kernels with a serial twin (``f`` and ``f_s``) are wrapped so that concurrent
    callers never launch two parallel kernels at once.
    """
    with _load_lock:
        loaded = _loaded.get(name)
        if loaded is not None:
            return loaded
        path = cache_dir() / f"{name}.py"
        try:
            current = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != source:
            _write_atomic(path, source)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        gated = _loaded[name] = _GatedModule(module)
        return gated


def digest(*parts: bytes) -> str:
    """A short hex name for generated code."""
    return hashlib.sha256(b"".join(parts)).hexdigest()[:20]


_code_digest: list[str] = []


def code_digest() -> str:
    """A digest of symloss's own source files: a saved plan is only read by the code that
    wrote it (computed once per process, ~1 ms)."""
    if not _code_digest:
        root = Path(__file__).parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
        _code_digest.append(h.hexdigest()[:20])
    return _code_digest[0]


def read_plan(key: str) -> dict[str, Any] | None:
    """The kernels' plan saved under ``key`` (:func:`write_plan`), or ``None``."""
    try:
        with open(cache_dir() / f"plan_{key}.json", encoding="utf-8") as f:
            plan = json.load(f)
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) and isinstance(plan.get("source"), str) else None


def write_plan(key: str, plan: dict[str, Any]) -> None:
    """Save a derivation's printed kernels (and their argument names) under ``key``, atomically;
    a folder that cannot be written only means the next process prints them again."""
    try:
        _write_atomic(cache_dir() / f"plan_{key}.json", json.dumps(plan))
    except OSError:
        pass
