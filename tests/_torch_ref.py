"""Torch references shared by the catalogue and second-order tests (autograd, hvp)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

TOL = {"float32": (3e-5, 1e-6), "float64": (1e-10, 1e-13)}


def seed(*parts: Any) -> int:
    """A seed from a test's parameters, the same in every process (``hash`` is salted)."""
    return zlib.crc32(repr(parts).encode())


def assert_close(
    got: Any, ref: Any, dtype: str, what: str, rtol: float | None = None, atol: float | None = None
) -> None:
    """``got`` equals ``ref`` to a few rounding errors of the dtype, relative to the scale.

    ``rtol`` and ``atol`` (relative to the largest ``|ref|``) loosen the dtype's defaults where
    the reference itself is known to be less accurate; each caller says why.
    """
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    default_rtol, default_atol = TOL[dtype]
    rtol = max(default_rtol, rtol or 0.0)
    atol = max(default_atol, atol or 0.0)
    finite = np.isfinite(ref)
    scale = float(np.max(np.abs(ref[finite]))) if np.any(finite) else 1.0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol * max(scale, 1.0), err_msg=what)


def torch_value_grad_hvp(
    fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, v: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Loss, gradient and (double-backward) HVP of the reduced ``fn`` at ``x``."""
    xt = torch.tensor(x, requires_grad=True)
    out = fn(xt)
    total = out.sum() if out.ndim else out
    (g,) = torch.autograd.grad(total, xt, create_graph=v is not None)
    h = None
    if v is not None:
        if g.requires_grad:
            (h_t,) = torch.autograd.grad(g, xt, grad_outputs=torch.tensor(v), allow_unused=True)
            # l1's double backward returns an "efficient zero tensor" (exactly 0).
            zero = h_t is None or h_t._is_zerotensor()
            h = np.zeros_like(x) if zero else h_t.detach().numpy()
        else:  # the gradient is piecewise constant: autograd has nothing to differentiate
            h = np.zeros_like(x)
    return out.detach().numpy(), g.detach().numpy(), h
