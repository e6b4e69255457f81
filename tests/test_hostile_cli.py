"""Hostile command lines: a table of argument lists, each with its exit code, and every
failure one line on stderr -- never a traceback, never a hang, never a file overwritten that
symloss did not write. Rows that need their own process (encodings, a full disk, Ctrl-C, an
implementation that hangs, exits or crashes) run ``python -m symloss.cli`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symloss.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")

# (argv with {tmp} for a fresh folder, expected exit code, fragment of the one stderr line)
TABLE: list[tuple[list[str], int, str]] = [
    ([], 2, "required"),
    (["nope"], 2, "invalid choice"),
    (["derive", "nope"], 2, "unknown loss"),
    (["derive"], 2, "give a loss name"),
    (["derive", "--all"], 2, "--all needs --out"),
    (["derive", "--all", "--out", ""], 2, "empty path"),
    (["derive", "bce", "--out", ""], 2, "empty path"),
    (["derive", "bce", "--all", "--out", "{tmp}"], 2, "not both"),
    (["derive", "bce", "--out", "{tmp}/missing/x.md"], 2, "does not exist"),
    (["derive", "bce", "--out", "{tmp}"], 2, "is a folder"),
    (["derive", "bce", "--out", "{tmp}/taken.md"], 2, "exists; pass --force"),
    (["derive", "bce", "--out", "{tmp}/taken.md", "--force"], 0, ""),
    (["derive", "bce", "--out", "{tmp}/new.md"], 0, ""),
    (["derive", "--all", "--out", "{tmp}/project"], 2, "README.md, not written by symloss"),
    (["derive", "--all", "--out", "{tmp}/taken.md"], 2, "is a file"),
    (["derive", "bce", "--out", "/proc/symloss-test.md"], 1, "cannot write"),
    (["derive", "--all", "--out", "/proc/symloss-test"], 1, "cannot create the folder"),
    (["derive", "bce", "--order", "3"], 2, "invalid choice"),
    (["derive", "bce", "--format", "pdf"], 2, "invalid choice"),
    (["derive", "bce", "--document"], 2, "--format latex"),
    (["derive", "ce", "--weight", "nan", "1"], 2, "weight"),
    (["derive", "ce", "--weight", "x"], 2, "invalid float"),
    (["derive", "ce", "--label-smoothing", "-0.1"], 2, "[0, 1]"),
    (["derive", "ce", "--label-smoothing", "1e400"], 2, "[0, 1]"),
    (["derive", "ce", "--ignore-index", "9223372036854775808"], 2, "64 bits"),
    (["derive", "ce", "--ignore-index", "-9223372036854775809"], 2, "64 bits"),
    (["derive", "ce", "--ignore-index", "1e3"], 2, "invalid int"),
    (["derive", "smooth_l1_loss", "--beta", "-1e-3"], 2, "beta"),
    (["derive", "huber_loss", "--delta", "-inf"], 2, "delta"),
    (["derive", "ce", "--reduction", "batchmean"], 2, "reduction"),
    (["derive", "ce", "--margin", "1"], 2, "margin"),
    (["check", "bce", "--domain", "0", "1e-300"], 2, "no two distinct float32"),
    (["check", "bce", "--domain", "1", "0"], 2, "LO < HI"),
    (["check", "bce", "--domain", "nan", "1"], 2, "LO < HI"),
    (["check", "bce", "--domain", "-inf", "1"], 2, "LO < HI"),
    (["check", "bce", "--domain", "1"], 2, "expected 2 arguments"),
    (["check", "ce", "--ignore-index", "9223372036854775808"], 2, "64 bits"),
    (["check", "--expr", "z/0", "--impl", "x:y"], 2, "not finite"),
    (["check", "--expr", "sigmoid(" * 20 + "z" + ")" * 20, "--impl", "x:y"], 2, "nested"),
    (["check", "--expr", "(z+y+1)**64*(z-y+2)**64", "--impl", "x:y"], 2, "exponent 64"),
    (["check", "--expr", "z**2"], 2, "no torch twin"),
    (["check", "--expr", "z**2", "--beta", "1", "--impl", "x:y"], 2, "only --reduction"),
    (["check", "bce", "--impl", "nocolon"], 2, "MODULE:FUNCTION"),
    (["check", "bce", "--impl", "no_such_module_xyz:f"], 2, "no module named"),
    (["check", "bce", "--timeout", "0"], 2, "positive number of seconds"),
    (["check", "bce", "--timeout", "-5"], 2, "positive number of seconds"),
    (["check", "bce", "--timeout", "nan"], 2, "positive number of seconds"),
    (["check", "bce", "--dtype", "float16"], 2, "invalid choice"),
    (["plot", "bce"], 2, "required"),
    (["plot", "bce", "-o", "{tmp}/missing/x.png"], 2, "does not exist"),
    (["plot", "bce", "-o", "{tmp}/x.xyz"], 2, "extension '.xyz'"),
    (["plot", "bce", "-o", "{tmp}/noext"], 2, "no extension"),
    (["plot", "bce", "-o", "{tmp}"], 2, "is a folder"),
    (["plot", "bce", "-o", "{tmp}/taken.md"], 2, "exists; pass --force"),
    (["plot", "bce", "-o", "{tmp}/x.png", "--range", "1", "-1"], 2, "LO < HI"),
    (["plot", "bce", "-o", "{tmp}/x.png", "--range", "-inf", "1"], 2, "LO < HI"),
    (["plot", "ce", "-o", "{tmp}/ce.png"], 2, "element-wise"),
    (["check", "bce_with_logits", "--domain", "-1e4", "1e4", "--dtype", "float64"], 0, ""),
]


@pytest.fixture(autouse=True)
def _quick_documents(monkeypatch):
    """``derive --all`` writes three files here, not the ~80 of derivations/ (the CLI's file
    handling is what is tested; tests/test_documents.py covers the documents)."""
    from symloss import documents

    def render_all() -> dict[str, str]:
        return {"README.md": "# Derivations\n\nGenerated by `symloss derive --all --out x`\n",
                "binary_cross_entropy_with_logits.md": "# bce with logits\n",
                "cross_entropy.md": "# cross entropy\n"}

    monkeypatch.setattr(documents, "render_all", render_all)


def _prepare(tmp_path: Path) -> None:
    (tmp_path / "taken.md").write_text("someone's notes\n")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "README.md").write_text("# My project\n")


@pytest.mark.parametrize(("argv", "code", "fragment"), TABLE,
                         ids=[" ".join(a)[:50] or "(none)" for a, _, _ in TABLE])
def test_hostile_command_line(argv, code, fragment, tmp_path, capsys):
    _prepare(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        got = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert got == code, (got, out, err)
    if code:
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert fragment.lower() in err.lower(), err
    forced = "--force" in argv
    for path, content in before.items():  # nothing it did not write is overwritten
        assert forced or path.read_bytes() == content, path


def test_the_table_is_large_enough_to_mean_something():
    assert len(TABLE) + len(PROCESS_TABLE) >= 70


def test_derive_all_into_its_own_folder_again_is_allowed(tmp_path, capsys):
    assert main(["derive", "--all", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "binary_cross_entropy_with_logits.md"
    stale.write_text("stale\n")  # as after a change of a loss
    assert main(["derive", "--all", "--out", str(tmp_path)]) == 0  # its README is symloss's
    assert stale.read_text() != "stale\n"


def test_derive_out_writes_the_chosen_format(tmp_path, capsys):
    path = tmp_path / "bce.tex"
    assert main(["derive", "bce", "--format", "latex", "--out", str(path)]) == 0
    assert path.read_text(encoding="utf-8").startswith("\\intertext")


# --------------------------------------------------------------------------- in a process
_IMPLS = {
    "sleeper.py": "import time\ndef f(x, y):\n    time.sleep(600)\n",
    "exiter.py": "import sys\nsys.exit(3)\n",
    "crasher.py": "import ctypes\ndef f(x, y):\n    return ctypes.string_at(0)\n",
    "shape.py": ("import torch.nn.functional as F\ndef f(x, y):\n"
                 "    return F.binary_cross_entropy_with_logits(x, y, reduction='none')\n"),
    "printer.py": ("import torch.nn.functional as F\nprint('hello from import')\n"
                   "def f(x, y):\n    print('called')\n"
                   "    return F.binary_cross_entropy_with_logits(x, y)\n"),
}

_CHECK = ["check", "bce_with_logits", "--dtype", "float64"]

# (argv, environment, expected exit code, fragment of stderr's one line, what stdout holds)
PROCESS_TABLE: list[tuple[list[str], dict[str, str], int, str, str]] = [
    (["derive", "bce"], {"PYTHONIOENCODING": "ascii"}, 0, "", "ascii"),
    (["derive", "ce", "--order", "2"], {"PYTHONIOENCODING": "cp1252"}, 0, "", "cp1252"),
    (["list"], {"PYTHONIOENCODING": "cp1252"}, 0, "", "cp1252"),
    (["list"], {"PYTHONIOENCODING": "ascii"}, 0, "", "ascii"),
    (["derive", "bce"], {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
                         "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""}, 0, "", "ascii"),
    (["derive", "bce", "--format", "latex"], {"PYTHONIOENCODING": "ascii"}, 0, "", "ascii"),
    (["derive", "bce", "--format", "markdown"], {"PYTHONIOENCODING": "ascii"}, 1,
     "PYTHONIOENCODING=utf-8", ""),
    (["derive", "bce", "-h"], {"PYTHONIOENCODING": "ascii"}, 0, "", "ascii"),
    ([*_CHECK, "--impl", "sleeper:f", "--timeout", "3"], {}, 1, "", "did not finish within 3 s"),
    ([*_CHECK, "--impl", "exiter:f"], {}, 1, "", "sys.exit(3)"),
    ([*_CHECK, "--impl", "crasher:f"], {}, 1, "", "SIGSEGV"),
    ([*_CHECK, "--impl", "shape:f"], {}, 1, "", "returned a loss of shape (7,)"),
    ([*_CHECK, "--impl", "printer:f", "--json"], {}, 0, "", "json"),
    ([*_CHECK, "--impl", "crasher:f", "--json"], {}, 1, "", "json"),
]


def _cli(argv: list[str], env: dict[str, str], cwd: Path, stdout: object = subprocess.PIPE,
         timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(cwd)]), **env}
    full = {k: v for k, v in full.items() if v != ""}
    return subprocess.run([sys.executable, "-m", "symloss.cli", *argv], cwd=cwd, env=full,
                          stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)


@pytest.fixture
def impls(tmp_path: Path) -> Path:
    for name, code in _IMPLS.items():
        (tmp_path / name).write_text(code)
    return tmp_path


@pytest.mark.parametrize(("argv", "env", "code", "err_fragment", "stdout_holds"), PROCESS_TABLE,
                         ids=[" ".join(r[0])[:40] + " " + " ".join(r[1].values())[:20]
                              for r in PROCESS_TABLE])
def test_hostile_command_line_in_a_process(argv, env, code, err_fragment, stdout_holds, impls):
    proc = _cli(argv, env, impls)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], err[-3000:])
    assert "Traceback" not in err, err
    if code and err_fragment:
        assert err.count("\n") == 1 and err_fragment in err, err
    out = proc.stdout
    if stdout_holds in ("ascii", "cp1252"):
        text = out.decode(stdout_holds)  # decodes: nothing unencodable was written
        assert text.strip()
    elif stdout_holds == "json":
        data = json.loads(out)  # JSON whatever the implementation printed
        assert data["agree"] is (code == 0)
    elif stdout_holds:
        assert stdout_holds in out.decode("utf-8", "replace"), out[-2000:]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_stdout_on_a_full_disk_is_one_line_and_exit_1(tmp_path):
    with open("/dev/full", "w") as full:
        proc = _cli(["derive", "ce"], {}, tmp_path, stdout=full)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert err.count("\n") == 1 and "No space left on device" in err, err


def test_a_closed_pipe_is_not_an_error(tmp_path):
    full = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-m", "symloss.cli", "derive", "ce"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # `symloss derive ce | head -c 10`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err


def test_ctrl_c_is_one_line_and_exit_1(impls):
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(impls)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "symloss.cli", *_CHECK, "--impl", "sleeper:f", "--timeout", "300"],
        cwd=impls, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until the check is under way: the implementation's process has been started.
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if children.exists() and children.read_text().strip():
            break
        if not children.exists() and time.monotonic() > deadline - 110:
            break  # no /proc here: ten seconds is well into the check
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert err.decode().strip() == "symloss: error: interrupted", err
