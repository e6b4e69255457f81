"""The command line: output, exit codes, one-line errors, and derivations/ kept current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from symloss.cli import main
from symloss.documents import render_all

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_and_aliases(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy"):
        assert name in out
    assert "bce  " in out and "link='sigmoid'" in out


@pytest.mark.parametrize("fmt", ["text", "latex", "markdown"])
def test_derive_prints_each_format(capsys, fmt):
    code, out, err = run(capsys, "derive", "bce", "--format", fmt)
    assert code == 0 and err == ""
    assert "Canonical form" in out


def test_derive_bce_ends_in_the_canonical_form(capsys):
    code, out, _ = run(capsys, "derive", "bce")
    assert code == 0
    assert out.rstrip().splitlines()[-2].endswith("σ(z) - y")
    assert "Result (proved by SymPy)" in out


def test_derive_document(capsys):
    code, out, _ = run(capsys, "derive", "ce", "--format", "latex", "--document",
                       "--weight", "1", "2", "3", "--label-smoothing", "0.1")
    assert code == 0
    assert out.startswith(r"\documentclass") and out.rstrip().endswith(r"\end{document}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["derive", "bcee"], "Did you mean 'bce'?"),
        (["derive", "ce", "--reduction", "avg"], "invalid choice: 'avg'"),
        (["derive", "ce", "--label-smoothing", "2"], "must be in [0, 1]"),
        (["derive", "bce", "--pos-weight", "2"], "valid options: weight, reduction, link"),
        (["derive", "binary_cross_entropy", "--link", "tanh"], "valid values: None, 'sigmoid'"),
        (["derive", "bce", "--document"], "--document goes with --format latex"),
        (["derive"], "give a loss name"),
        (["derive", "--all"], "--all needs --out DIR"),
        (["check", "nope"], "unknown loss 'nope'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err


def test_check_agrees_for_torch_bce_with_logits(capsys):
    pytest.importorskip("torch")
    code, out, _ = run(capsys, "check", "bce_with_logits", "--pos-weight", "2", "1", "3", "0.5")
    assert code == 0, out
    assert "agrees: all 16 cases" in out
    assert "agrees over the whole scanned range" in out


def test_check_cross_entropy_with_options(capsys):
    pytest.importorskip("torch")
    code, out, _ = run(capsys, "check", "ce", "--weight", "1", "2", "3", "--label-smoothing", "0.1",
                       "--dtype", "float32")
    assert code == 0, out
    assert "float64" not in out.split("-" * 20)[-1]


def test_check_reports_where_bce_of_sigmoid_disagrees(capsys):
    pytest.importorskip("torch")
    code, out, _ = run(capsys, "check", "bce")
    assert code == 1
    assert "[float32] 2 of 8 cases disagree" in out
    assert "likely cause: the gradient goes to 0 beyond |input|" in out
    assert "agrees for inputs in [-27.6310272, 16.6355305]" in out


def test_console_script_runs_without_traceback():
    run_ = subprocess.run([sys.executable, "-m", "symloss.cli", "derive", "nope"],
                          capture_output=True, text=True)
    assert run_.returncode == 2
    assert run_.stderr.count("\n") == 1


def test_derive_all_writes_the_folder(tmp_path, capsys):
    code, _, _ = run(capsys, "derive", "--all", "--out", str(tmp_path))
    assert code == 0
    written = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(written) == sorted(render_all())


def test_import_symloss_does_not_import_torch():
    code = "import sys, symloss; symloss.derive('bce'); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
