"""`symloss plot`: the exact curves come from the derivation alone (no torch); torch is needed
only to draw an implementation over them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symloss
from symloss.plot import curves

pytest.importorskip("matplotlib")

# (loss, options): element-wise losses with a smooth part and a kink.
CASES = [
    ("bce_with_logits", {}),
    ("binary_cross_entropy", {}),
    ("sigmoid_focal_loss", {}),
    ("smooth_l1_loss", {"beta": 0.5}),
    ("mse_loss", {}),
]

# Runs in a fresh interpreter where `import torch` fails, as without the [torch] extra.
_NO_TORCH = textwrap.dedent(
    """
    import json, sys
    sys.modules["torch"] = None  # any import of torch now raises ImportError
    import numpy as np
    import symloss
    from symloss.cli import main
    from symloss.plot import figure
    name, options, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    fig = figure(symloss.derive(name, **options), span=(-6.0, 6.0), points=61)
    drawn = [[ax.lines[0].get_ydata().tolist() for ax in fig.axes[col::2]] for col in (0, 1)]
    code = main(["plot", name, "-o", out])
    print(json.dumps({"drawn": drawn, "exit": code, "torch": "torch" in sys.modules
                      and sys.modules["torch"] is not None}))
    """
)


@pytest.mark.parametrize(("name", "options"), CASES)
def test_plot_without_torch_draws_loss_fn_grad_fn_and_hessian(tmp_path, name, options):
    out = tmp_path / "p.png"
    run = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, name, json.dumps(options), str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["exit"] == 0 and not result["torch"]
    assert out.read_bytes()[:4] == b"\x89PNG"
    d = symloss.derive(name, **{**options, "reduction": "none"})
    for col, target in enumerate((0.0, 1.0)):
        fig_rows = [np.array(r, dtype=float) for r in result["drawn"][col]]
        z = np.linspace(-6.0, 6.0, 61)
        if d.spec.input_domain(d.options) == "probability":
            z = np.linspace(1e-6, 1 - 1e-6, 61)
        y = np.full_like(z, target)
        expected = [d.loss_fn(z, y), d.grad_fn(z, y), d.hvp_fn(z, y, np.ones_like(z))]
        for got, want in zip(fig_rows, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_curves_are_the_derivatives_of_the_loss():
    """Independent of the kernels: finite differences of ℓ give ∂ℓ/∂z, of ∂ℓ/∂z give ∂²ℓ/∂z²."""
    (c,) = curves(symloss.derive("sigmoid_focal_loss"), span=(-3.0, 3.0), points=6001,
                  targets=(1.0,))
    h = c.z[1] - c.z[0]
    np.testing.assert_allclose(np.gradient(c.loss, h)[1:-1], c.gradient[1:-1], atol=1e-5)
    np.testing.assert_allclose(np.gradient(c.gradient, h)[1:-1], c.second[1:-1], atol=1e-5)


def test_overlay_without_torch_is_a_clear_error(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None
        from symloss.cli import main
        sys.exit(main(["plot", "bce", "--torch", "-o", {str(tmp_path / "p.png")!r}]))
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "needs torch" in run.stderr


def test_plot_with_torch_overlay(tmp_path):
    pytest.importorskip("torch")
    from symloss.plot import figure

    fig = figure(symloss.derive("bce"), "torch", span=(-5.0, 5.0), points=41)
    gradient_axes = fig.axes[2:4]
    assert all(len(ax.lines) >= 2 for ax in gradient_axes)  # exact + torch's
    exact, torch_line = gradient_axes[1].lines[:2]
    np.testing.assert_allclose(torch_line.get_ydata(), exact.get_ydata(), atol=1e-6)


def test_plot_refuses_a_class_axis_loss():
    with pytest.raises(symloss.SymlossValueError, match="element-wise"):
        curves(symloss.derive("cross_entropy"))
