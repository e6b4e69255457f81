"""pytest plugin (registered through the ``pytest11`` entry point): check a loss in 3 lines.

The fixture ``symloss_check`` is :func:`symloss.testing.assert_grad_matches`::

    def test_my_loss(symloss_check):
        symloss_check("bce_with_logits", my_bce_with_logits, pos_weight=[2.0])

A failure shows symloss's report (the worst element, how many disagree, where, and the likely
wrong rule) as the assertion message. The marker names the loss once for a test::

    @pytest.mark.symloss("ce", label_smoothing=0.1)     # or symloss(name="ce", ...)
    def test_my_ce(symloss_check):
        symloss_check(my_ce)                             # name and options from the marker

``@pytest.mark.symloss()`` with no name only marks the test; ``symloss_check`` then takes the
name (``symloss_check(name, fn)`` or ``symloss_check(fn, name=...)``). Options given to the call
override the marker's. The fixture ``symloss_loss`` gives the marker's ``(name, options)``.
Every misuse is a :class:`~symloss.errors.SymlossTypeError` naming the forms that work.
Importing this module imports neither torch nor anything heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from symloss.errors import SymlossTypeError

_FORMS = ("symloss_check(name, fn, **options), symloss_check(fn, name=..., **options), or "
          "symloss_check(fn) under @pytest.mark.symloss(name, **options)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "symloss(name=None, **options): the loss a test checks with the symloss_check fixture "
        "(symloss_check(fn) then needs no name or options)",
    )


def _marker_loss(node: Any) -> tuple[str | None, dict[str, Any]]:
    """``(name, options)`` of the closest ``symloss`` marker (``(None, {})`` without one)."""
    marker = node.get_closest_marker("symloss")
    if marker is None:
        return None, {}
    options = dict(marker.kwargs)
    keyword = options.pop("name", None)
    if len(marker.args) > 1:
        raise SymlossTypeError(
            f"@pytest.mark.symloss takes one loss name and keyword options, got {marker.args!r}")
    if marker.args and keyword is not None:
        raise SymlossTypeError("@pytest.mark.symloss: give the name positionally or as name=, "
                               "not both")
    name = marker.args[0] if marker.args else keyword
    if name is not None and not isinstance(name, str):
        raise SymlossTypeError(f"@pytest.mark.symloss: the name must be a string, got {name!r}")
    return name, options


@pytest.fixture
def symloss_loss(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """The ``(name, options)`` of the test's ``@pytest.mark.symloss(name, **options)``."""
    name, options = _marker_loss(request.node)
    if name is None:
        raise SymlossTypeError("the symloss_loss fixture needs @pytest.mark.symloss(name, ...) "
                               "on the test")
    return name, options


@pytest.fixture
def symloss_check(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``symloss_check(name, fn, *, domain=None, dtypes=..., timeout=None, **options)``:
    assert ``fn`` matches symloss's exact loss value and gradient in float32 and float64 (see
    :func:`symloss.testing.assert_grad_matches`). With ``@pytest.mark.symloss(name,
    **options)`` on the test, ``symloss_check(fn)`` suffices."""
    from symloss.testing import assert_grad_matches

    marker_name, marker_options = _marker_loss(request.node)

    def check(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        name = kwargs.pop("name", None)
        fn = kwargs.pop("fn", None)
        if len(args) == 2 and name is None and fn is None:
            name, fn = args
        elif len(args) == 1 and fn is None:
            (fn,) = args
        elif len(args) == 1 and name is None:
            (name,) = args
        elif args:
            raise SymlossTypeError(f"symloss_check takes {_FORMS}; got {len(args)} positional "
                                   "arguments")
        if name is None:
            name = marker_name
        if name is None:
            raise SymlossTypeError(f"symloss_check needs a loss name: {_FORMS}")
        if fn is None or not callable(fn):
            raise SymlossTypeError(f"symloss_check needs the implementation fn, a callable, "
                                   f"got {fn!r}: {_FORMS}")
        options = {**marker_options, **kwargs} if name == marker_name else kwargs
        return assert_grad_matches(name, fn, **options)

    return check
