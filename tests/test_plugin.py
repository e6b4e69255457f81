"""The pytest plugin, run from a user's test file with pytester."""

from __future__ import annotations

pytest_plugins = ["pytester"]

USER_TESTS = """
import torch
import torch.nn.functional as F
import pytest

def test_torch_passes(symloss_check):
    symloss_check("bce_with_logits", F.binary_cross_entropy_with_logits)

@pytest.mark.symloss("ce", label_smoothing=0.1)
def test_marker(symloss_check):
    symloss_check(lambda z, t: F.cross_entropy(z, t, label_smoothing=0.1))

def test_sign_flipped(symloss_check):
    symloss_check("bce_with_logits", lambda z, y: -F.binary_cross_entropy_with_logits(z, y))
"""


def test_plugin_fixture_passes_and_fails_with_the_report(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*sign flipped*", "*worst*"])
