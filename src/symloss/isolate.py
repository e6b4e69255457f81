"""Running code under test so that a hang, an exit or a crash is a result, not the end.

* :func:`run_in_process` runs a function in a fresh interpreter (``spawn``) with a time limit:
  ``symloss check --impl`` uses it, so an implementation that sleeps forever, calls
  ``sys.exit(3)`` on import or segfaults is reported as a failed check with the reason.
  The child's standard output goes to standard error, so ``--json`` stays JSON.
* :func:`call_with_timeout` runs a function in a thread of this process with a time limit:
  the Python API's path (objects such as closures and tensors cannot cross a process
  boundary). A function past its limit is abandoned -- Python cannot stop a thread -- and the
  caller gets :class:`ImplementationTimeout` at once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from .errors import SymlossError

__all__ = ["DEFAULT_TIMEOUT", "ImplementationFailed", "ImplementationTimeout",
           "call_with_timeout", "run_in_process"]

#: Seconds an implementation under test may take for a whole check, by default.
DEFAULT_TIMEOUT = 300.0


class ImplementationFailed(SymlossError, RuntimeError):
    """The code under test raised, exited or crashed; the message says how."""


class ImplementationTimeout(ImplementationFailed, TimeoutError):
    """The code under test did not finish within its time limit."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "it was interrupted"
    text = str(exc).strip().splitlines()
    return f"it raised {type(exc).__name__}" + (f": {text[0][:300]}" if text else "")


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    # The code under test may print: keep this process's stdout away from the parent's.
    try:
        sys.stdout.flush()
        os.dup2(2, 1)
    except OSError:
        pass
    sys.stdout = sys.stderr
    try:
        message: tuple[str, Any] = ("ok", fn(*args))
    except SymlossError as exc:  # a usage error found in the child: reported as such
        message = ("usage", str(exc))
    except BaseException as exc:
        message = ("failed", _describe(exc))
    try:
        conn.send(message)
    except Exception as exc:
        conn.send(("failed", f"its result could not be sent back ({type(exc).__name__})"))
    conn.close()


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "its process did not end"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"its process was killed by {name} (a crash)"
    return f"its process exited with code {code} before reporting"


def run_in_process(fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
    """``fn(*args)`` in a fresh interpreter, within ``timeout`` seconds.

    Returns:
        ``fn``'s result (which must be picklable).

    Raises:
        ImplementationTimeout: past ``timeout`` (the process is killed).
        ImplementationFailed: ``fn`` raised, exited or crashed; the message says which.
        SymlossError: ``fn`` raised a usage error (re-raised with its message).
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(child, fn, args), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise ImplementationTimeout(f"it did not finish within {timeout:g} s")
        try:
            status, value = parent.recv()
        except EOFError:
            process.join(5)
            raise ImplementationFailed(_exit_reason(process.exitcode)) from None
    finally:
        parent.close()
        if process.is_alive():
            process.terminate()
            process.join(2)
            if process.is_alive():
                process.kill()
        process.join()
    if status == "usage":
        raise SymlossError(value)
    if status != "ok":
        raise ImplementationFailed(value)
    return value


def call_with_timeout(fn: Callable[..., Any], *args: Any, timeout: float | None,
                      **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or :class:`ImplementationTimeout` after ``timeout`` seconds.

    ``timeout=None`` calls ``fn`` directly. Otherwise it runs in a daemon thread; its
    exception, if any, is re-raised here.
    """
    if timeout is None:
        return fn(*args, **kwargs)
    if not timeout > 0:
        raise SymlossError(f"timeout must be a positive number of seconds, got {timeout!r}")
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="symloss-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ImplementationTimeout(f"the check did not finish within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
