"""`symloss check` and `symloss plot`: exit codes 0 / 1 / 2, one line for usage errors."""

from __future__ import annotations

import json
import sys

import pytest

from symloss.cli import main

IMPL = """
import torch
import torch.nn.functional as F

def bce_of_sigmoid(z, y):
    return F.binary_cross_entropy(torch.sigmoid(z), y)

NOT_CALLABLE = 3
"""


@pytest.fixture
def impl_module(tmp_path, monkeypatch):
    (tmp_path / "user_impl.py").write_text(IMPL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield "user_impl"
    sys.modules.pop("user_impl", None)


def test_torch_default_agrees(capsys):
    assert main(["check", "bce_with_logits", "--dtype", "float32"]) == 0
    assert "whole scanned range" in capsys.readouterr().out


def test_user_impl_disagrees_then_agrees_on_a_domain(impl_module, capsys):
    assert main(["check", "bce", "--impl", f"{impl_module}:bce_of_sigmoid"]) == 1
    out = capsys.readouterr().out
    assert "16.635" in out and "likely cause" in out
    args = ["check", "bce", "--impl", f"{impl_module}:bce_of_sigmoid", "--domain", "-10", "10"]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agree"] is True


@pytest.mark.parametrize(
    "impl", ["no_such_module_xyz:f", "user_impl:missing", "user_impl:NOT_CALLABLE", "user_impl"]
)
def test_usage_errors_exit_2_with_one_line(impl_module, capsys, impl):
    assert main(["check", "bce", "--impl", impl]) == 2
    err = capsys.readouterr().err
    assert err.startswith("symloss: error:") and err.count("\n") == 1


def test_expr_injection_is_a_usage_error(capsys):
    assert main(["check", "--expr", "__import__('os')", "--impl", "x:y"]) == 2
    assert "not a function" in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "bce.png"
    assert main(["plot", "bce", "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
