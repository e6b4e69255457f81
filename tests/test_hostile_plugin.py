"""Every documented form of the pytest plugin's marker and fixtures, and its misuses: a table
of user tests, each with its expected outcome, run once with pytester."""

from __future__ import annotations

pytest_plugins = ["pytester"]

_HEAD = """
import pytest
import torch.nn.functional as F

BCE = F.binary_cross_entropy_with_logits
"""

# (test name, body, expected outcome, fragment of the failure)
TABLE: list[tuple[str, str, str, str]] = [
    ("marker_positional", '@pytest.mark.symloss("ce", label_smoothing=0.1)\n'
     "def test_it(symloss_check):\n"
     "    symloss_check(lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1))\n",
     "passed", ""),
    ("marker_name_keyword", '@pytest.mark.symloss(name="bce_with_logits")\n'
     "def test_it(symloss_check):\n    symloss_check(BCE)\n", "passed", ""),
    ("marker_empty_name_in_call", "@pytest.mark.symloss()\n"
     "def test_it(symloss_check):\n    symloss_check('bce_with_logits', BCE)\n", "passed", ""),
    ("name_and_fn_keyword", "def test_it(symloss_check):\n"
     "    symloss_check('bce_with_logits', fn=BCE)\n", "passed", ""),
    ("fn_and_name_keyword", "def test_it(symloss_check):\n"
     "    symloss_check(BCE, name='bce_with_logits')\n", "passed", ""),
    ("call_options_override_marker", '@pytest.mark.symloss("ce", label_smoothing=0.3)\n'
     "def test_it(symloss_check):\n"
     "    symloss_check(lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1),\n"
     "                  label_smoothing=0.1)\n", "passed", ""),
    ("loss_fixture", '@pytest.mark.symloss("ce", label_smoothing=0.1)\n'
     "def test_it(symloss_loss):\n"
     "    assert symloss_loss == ('ce', {'label_smoothing': 0.1})\n", "passed", ""),
    ("loss_fixture_name_keyword", '@pytest.mark.symloss(name="mse_loss")\n'
     "def test_it(symloss_loss):\n    assert symloss_loss == ('mse_loss', {})\n", "passed", ""),
    ("loss_fixture_without_marker", "def test_it(symloss_loss):\n    pass\n",
     "error", "needs @pytest.mark.symloss"),
    ("marker_empty_fn_only", "@pytest.mark.symloss()\n"
     "def test_it(symloss_check):\n    symloss_check(BCE)\n", "failed", "needs a loss name"),
    ("no_marker_fn_only", "def test_it(symloss_check):\n    symloss_check(BCE)\n",
     "failed", "needs a loss name"),
    ("marker_two_names", '@pytest.mark.symloss("ce", "bce")\n'
     "def test_it(symloss_check):\n    symloss_check(BCE)\n", "error", "one loss name"),
    ("marker_name_twice", '@pytest.mark.symloss("ce", name="bce")\n'
     "def test_it(symloss_check):\n    symloss_check(BCE)\n", "error", "not both"),
    ("no_arguments", "def test_it(symloss_check):\n    symloss_check()\n",
     "failed", "needs a loss name"),
    ("three_arguments", "def test_it(symloss_check):\n    symloss_check('a', BCE, 3)\n",
     "failed", "3 positional"),
    ("fn_not_callable", "def test_it(symloss_check):\n    symloss_check('bce_with_logits', 3)\n",
     "failed", "callable"),
    ("no_dtypes", "def test_it(symloss_check):\n"
     "    symloss_check('bce_with_logits', BCE, dtypes=[])\n", "failed", "empty"),
    ("wrong_implementation_fails", "def test_it(symloss_check):\n"
     "    symloss_check('bce_with_logits', lambda z, y: -BCE(z, y))\n", "failed", "sign flipped"),
]


def test_every_form_of_the_plugin(pytester):
    source = _HEAD + "\n\n".join(body.replace("def test_it", f"def test_{name}")
                                  for name, body, _, _ in TABLE)
    pytester.makepyfile(test_user=source)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "-q")
    text = result.stdout.str()
    for name, _, outcome, fragment in TABLE:
        word = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR"}[outcome]
        assert f"{word} test_user.py::test_{name}" in text, (name, text[-4000:])
        if fragment:
            assert fragment in text, (name, fragment)
