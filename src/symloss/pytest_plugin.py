"""pytest plugin (registered through the ``pytest11`` entry point): check a loss in 3 lines.

The fixture ``symloss_check`` is :func:`symloss.testing.assert_grad_matches`::

    def test_my_loss(symloss_check):
        symloss_check("bce_with_logits", my_bce_with_logits, pos_weight=[2.0])

A failure shows symloss's report (the worst element, how many disagree, where, and the likely
wrong rule) as the assertion message. The marker ``@pytest.mark.symloss(name, **options)``
is registered for the same check on a test that returns nothing special: with it, the fixture
``symloss_loss`` gives the marker's ``(name, options)``. Importing this module imports neither
torch nor anything heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "symloss(name, **options): the loss a test checks with the symloss_check fixture "
        "(symloss_check(fn) then needs no name or options)",
    )


@pytest.fixture
def symloss_check(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``symloss_check(name, fn, *, domain=None, **options)``: assert ``fn`` matches symloss's
    exact loss value and gradient in float32 and float64 (see
    :func:`symloss.testing.assert_grad_matches`). With ``@pytest.mark.symloss(name,
    **options)`` on the test, ``symloss_check(fn)`` suffices."""
    from symloss.testing import assert_grad_matches

    marker = request.node.get_closest_marker("symloss")

    def check(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        if marker is not None and len(args) == 1:
            (name,) = marker.args
            return assert_grad_matches(name, args[0], **{**marker.kwargs, **kwargs})
        name, fn = args
        return assert_grad_matches(name, fn, **kwargs)

    return check
