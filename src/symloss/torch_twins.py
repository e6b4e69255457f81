"""torch twins that are not simply ``torch.nn.functional.<name>``.

A catalogue entry names one of these functions in ``LossSpec.torch_twin``; each takes the
loss's validated options and returns ``fn(*arrays)`` on torch tensors, or ``None`` where
``torch.nn.functional.<name>`` itself is the twin for those options. torch is imported only
when a twin is called, so importing this module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["nll_loss", "sigmoid_focal_loss"]


def nll_loss(options: Mapping[str, Any]) -> Callable[[Any, Any], Any] | None:
    """``nll_loss(link='log_softmax')``: ``F.nll_loss(log_softmax(input), target)``."""
    if options.get("link") != "log_softmax":
        return None

    def nll_of_log_softmax(input: Any, target: Any) -> Any:
        import torch

        weight = options.get("weight")
        w = None if weight is None else torch.as_tensor(weight, dtype=input.dtype)
        logp = torch.log_softmax(input, 0 if input.dim() == 1 else 1)
        return torch.nn.functional.nll_loss(
            logp, target, weight=w, ignore_index=options["ignore_index"],
            reduction=options["reduction"],
        )

    return nll_of_log_softmax


def sigmoid_focal_loss(options: Mapping[str, Any]) -> Callable[[Any, Any], Any]:
    """torchvision.ops.sigmoid_focal_loss, line by line, with torch operations."""

    def focal(inputs: Any, targets: Any) -> Any:
        import torch

        p = torch.sigmoid(inputs)
        ce = torch.nn.functional.binary_cross_entropy_with_logits(
            inputs, targets, reduction="none"
        )
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce * ((1 - p_t) ** options["gamma"])
        if options["alpha"] >= 0:
            loss = (options["alpha"] * targets + (1 - options["alpha"]) * (1 - targets)) * loss
        if options["reduction"] == "mean":
            return loss.mean()
        return loss.sum() if options["reduction"] == "sum" else loss

    return focal
