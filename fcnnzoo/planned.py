"""Forward plans that ConvReLUPool layers keep between inference calls.

A plan holds the validated shape, the chosen kernel and the weights packed
for it, so a repeated call with the same input size skips the argument
checks and the packing. The weights are packed again when their storage or
version counter changes, which every in-place update through PyTorch
(an optimizer step, ``load_state_dict``, ``copy_`` under ``no_grad``)
does. Writes that bypass PyTorch, such as through a NumPy view of the
weight, are not seen: call :func:`forget_plans` after them.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from fcnnzoo import _C
from fcnnzoo import ops

__all__ = ["forget_plans", "planned_forward"]

logger = logging.getLogger(__name__)

WeightKey = tuple[int, int, int, int]


@dataclass
class _Plan:
    native: _C.ForwardPlan
    input_chw: tuple[int, int, int]
    pooled_hw: tuple[int, int]
    weight_key: WeightKey | None = None


# Kept outside the modules, so that copying, pickling and state_dict never see them.
_PLANS: weakref.WeakKeyDictionary[nn.Module, _Plan] = weakref.WeakKeyDictionary()


def forget_plans() -> None:
    """Drop every cached plan, so the next calls validate and pack again."""
    _PLANS.clear()


# Tensor subclasses other than parameters may change what ops do, so they take the op's path.
_PLAIN_TYPES = (torch.Tensor, nn.Parameter)


def _plain_float_cpu(tensor: torch.Tensor) -> bool:
    return type(tensor) in _PLAIN_TYPES and tensor.dtype is torch.float32 and tensor.is_cpu and tensor.is_contiguous()


def _weight_key(weight: torch.Tensor, bias: torch.Tensor | None) -> WeightKey | None:
    """Return what identifies the current weight values, or None when nothing does.

    Tensors made in inference mode keep no version counter, so their values
    are packed again on every call.
    """
    if weight.is_inference() or (bias is not None and bias.is_inference()):
        return None
    if bias is None:
        return (weight.data_ptr(), weight._version, 0, 0)
    return (weight.data_ptr(), weight._version, bias.data_ptr(), bias._version)


def planned_forward(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """Run ``module``'s layer on ``x`` through its cached plan, or return None if the call does not qualify.

    Qualifying calls are eager inference calls on contiguous float32 CPU
    tensors of rank 4 with a nonempty batch, where autograd records nothing.
    Every other call returns None, and the caller takes the op's own path,
    which validates, supports autograd and compiles.
    """
    if not (_plain_float_cpu(x) and x.dim() == 4 and x.shape[0] > 0 and _plain_float_cpu(weight)):
        return None
    if bias is not None and not _plain_float_cpu(bias):
        return None
    if torch.compiler.is_compiling():
        return None
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)):
        return None

    plan = _PLANS.get(module)
    input_chw = (x.shape[1], x.shape[2], x.shape[3])
    if plan is None or plan.input_chw != input_chw:
        plan = _make_plan(module, x, weight, bias)
        if plan is None:
            return None
        _PLANS[module] = plan
    key = _weight_key(weight, bias)
    if key is None or plan.weight_key != key:
        plan.native.set_weights(weight.detach().numpy(), None if bias is None else bias.detach().numpy())
        plan.weight_key = key

    output = torch.empty((x.shape[0], weight.shape[0], *plan.pooled_hw), dtype=torch.float32)
    plan.native.forward(x.detach().numpy(), output.numpy(), None, torch.get_num_threads())
    return output


def _make_plan(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> _Plan | None:
    """Validate a call as the op does and plan it, or return None if the op would not run the fused kernel."""
    arguments, pooled_hw = ops.validate_call(x, weight, bias, **module.op_settings())
    if not ops.runs_fused(x, weight, bias, arguments):
        return None
    native = _C.ForwardPlan(tuple(x.shape), tuple(weight.shape), **ops.native_settings(arguments))
    logger.debug("conv_relu_pool: planned kernel %s for input %s", native.kernel, tuple(x.shape))
    return _Plan(native, (x.shape[1], x.shape[2], x.shape[3]), pooled_hw)
