"""A bounded, seeded fuzz run over option values, shapes and targets of every loss, against
torch: a clear SymlossError wherever torch raises, the same numbers (loss and gradient, in
float64) wherever it does not. Hypothesis runs derandomized, with a fixed number of examples
per loss, so the run is the same every time.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import symloss  # noqa: E402
from symloss.catalog import CATALOG  # noqa: E402
from symloss.errors import SymlossError  # noqa: E402
from symloss.testing import torch_function  # noqa: E402

#: Losses of (input, target): the fuzz drives them through torch's twin.
NAMES = sorted(n for n in CATALOG if CATALOG[n].arguments == ("input", "target")
               and getattr(CATALOG[n], "has_torch_twin", True))
EXAMPLES = 12

#: Where symloss refuses what torch accepts, on purpose: fragment of symloss's message -> why.
STRICTER = {
    "weight must have shape": "torch broadcasts a per-class weight of another length against "
    "the classes (multilabel_soft_margin_loss: weight (2,) for 1 class); that is a bug in the "
    "caller's code, so symloss says so",
    "must equal input shape": "torch broadcasts a target of another shape with a warning that "
    "it 'will likely lead to incorrect results'; symloss refuses it",
}


def _option_value(opt: Any, draw: Any, n_classes: int) -> Any:
    if opt.choices:
        return draw(st.sampled_from(list(opt.choices)))
    if opt.kind == "int":
        return draw(st.integers(-101, n_classes + 1))
    if opt.kind == "unit_interval":
        return draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, 1.5, -0.1]))
    if opt.kind in ("real", "nonnegative", "positive"):
        return draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0]))
    if opt.kind == "array":
        if draw(st.booleans()):
            return None
        size = draw(st.sampled_from([n_classes, n_classes + 1, 1]))
        return np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=size,
                                      max_size=size)))
    return opt.default


@st.composite
def cases(draw: Any, name: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    spec = CATALOG[name]
    n_classes = draw(st.integers(1, 4))
    options = {}
    for opt in spec.options:
        if draw(st.booleans()):
            value = _option_value(opt, draw, n_classes)
            if value is not None:
                options[opt.name] = value
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if spec.family == "class_axis":
        batch = draw(st.sampled_from([(), (3,), (2,), (2, 2)]))
        shape = (*batch[:1], n_classes, *batch[1:]) if batch else (n_classes,)
        x = rng.standard_normal(shape) * 3
        row_shape = tuple(d for i, d in enumerate(shape) if i != (0 if len(shape) == 1 else 1))
        if spec.multi_hot_targets or (not spec.index_targets_only and draw(st.booleans())):
            y = rng.random(shape)
            if not spec.multi_hot_targets:
                y = y / y.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
            else:
                y = (y < 0.5).astype(float)
        else:
            y = rng.integers(-1, n_classes + 1, row_shape) if draw(st.booleans()) else \
                rng.integers(0, n_classes, row_shape)
            if len(row_shape) and draw(st.booleans()):
                y.flat[0] = options.get("ignore_index", -100)
    else:
        shape = draw(st.sampled_from([(), (0,), (1,), (3,), (2, 3), (2, 1, 2)]))
        x = rng.standard_normal(shape) * 3
        if spec.input_domain({**{o.name: o.default for o in spec.options}, **options}) \
                == "probability":
            x = rng.random(shape) * draw(st.sampled_from([1.0, 1.2]))
        y = draw(st.sampled_from(["unit", "wide", "sign"]))
        y = (rng.random(shape) if y == "unit" else rng.random(shape) * 3 - 1.5 if y == "wide"
             else np.where(rng.random(shape) < 0.5, -1.0, 1.0))
        if name == "poisson_nll_loss" or name == "kl_div":
            y = np.abs(y)
        if draw(st.booleans()) and np.size(y):
            y = y.reshape(-1)[: max(1, np.size(y) - 1)] if draw(st.booleans()) else y
    return options, np.asarray(x, dtype=np.float64), np.asarray(y)


def _torch(d: symloss.Derivation, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
    fn = torch_function(d)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.from_numpy(y if y.dtype.kind in "iu" else y.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(xt, yt)
    (out.sum() if out.ndim else out).backward()
    grad = xt.grad if xt.grad is not None else torch.zeros_like(xt)
    return out.detach().numpy(), grad.numpy()


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_against_torch(name):
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(name))
    def run(case: tuple[dict[str, Any], np.ndarray, np.ndarray]) -> None:
        options, x, y = case
        try:
            d = symloss.derive(name, **options)
        except SymlossError as exc:
            assert str(exc) and "\n" not in str(exc)
            return  # an option symloss refuses (torch may check it later, or not at all)
        try:
            want = _torch(d, x, y)
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            with pytest.raises(SymlossError):  # torch raises: so must symloss, clearly
                d.loss_fn(x, y)
                d.grad_fn(x, y)
            del exc
            return
        try:
            got = (np.asarray(d.loss_fn(x, y)), np.asarray(d.grad_fn(x, y)))
        except SymlossError as exc:
            if any(fragment in str(exc) for fragment in STRICTER):
                return
            pytest.fail(f"{name}{options} {x.shape} {y.shape} {y.dtype}: torch computes "
                        f"{want[0]!r}, symloss raised {exc}")
        for what, g, w in zip(("loss", "grad"), got, want, strict=True):
            assert g.shape == w.shape, (what, g.shape, w.shape)
            np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-10, equal_nan=True,
                                       err_msg=f"{name} {what} {options} {x.shape} {y.shape}")

    run()
