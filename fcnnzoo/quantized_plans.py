"""Native int8 conv -> ReLU -> max-pool calls, with the packed weights cached between calls.

Packing an int8 weight for the kernel costs about as much as a small call,
so each packed weight is kept in a small least-recently-used cache. The key
is the weight's address, version counter, shape and the layer's arguments,
and the entry keeps the weight tensor alive, so its address cannot be
reused by another tensor while the entry exists. Every in-place update
through PyTorch bumps the version counter and so repacks. Writes that bypass
PyTorch, such as through a NumPy view of the weight, are not seen: call
:func:`forget_quantized_plans` after them.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import numpy as np
import torch

from fcnnzoo import _C

__all__ = ["forget_quantized_plans", "native_quantized_forward", "runs_native"]

logger = logging.getLogger(__name__)

Pair = tuple[int, int]
PlanKey = tuple[object, ...]

# Enough for every layer of a few quantized models; each entry contains one
# packed copy of an int8 weight.
_MAX_PLANS = 64

_PLANS: OrderedDict[PlanKey, tuple[torch.Tensor, _C.QuantizedForwardPlan]] = OrderedDict()
# Calls from several Python threads may look up and evict entries at the same time.
_PLANS_LOCK = threading.Lock()

# Tensor subclasses may change what operations do, so they take the reference path.
_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


def forget_quantized_plans() -> None:
    """Drop every cached packed weight, so the next calls pack again."""
    with _PLANS_LOCK:
        _PLANS.clear()


def runs_native(x: torch.Tensor, weight_q: torch.Tensor, bias_q: torch.Tensor | None, multiplier: torch.Tensor) -> bool:
    """Return whether the native kernel can compute a validated call.

    It runs plain float32 or uint8 CPU inputs in eager mode where autograd
    records nothing; every other call takes the reference.
    """
    if type(x) not in _PLAIN_TYPES or type(weight_q) not in _PLAIN_TYPES:
        return False
    if x.dtype not in (torch.float32, torch.uint8) or not x.is_cpu or x.layout is not torch.strided:
        return False
    if not weight_q.is_cpu or not multiplier.is_cpu or (bias_q is not None and not bias_q.is_cpu):
        return False
    if torch.is_grad_enabled() and x.requires_grad:
        return False
    return not torch.compiler.is_compiling()


def _as_array(tensor: torch.Tensor) -> np.ndarray:
    """Return a NumPy view of a CPU tensor, copied first if it is not contiguous."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    return tensor.numpy()


def _plan_for(weight_q: torch.Tensor, arguments: tuple[Pair, Pair, Pair, Pair, bool]) -> _C.QuantizedForwardPlan:
    stride, padding, pool_kernel, pool_stride, ceil_mode = arguments
    cacheable = weight_q.is_contiguous() and not weight_q.is_inference()
    key: PlanKey | None = None
    if cacheable:
        key = (weight_q.data_ptr(), weight_q._version, tuple(weight_q.shape), *arguments)
        with _PLANS_LOCK:
            entry = _PLANS.get(key)
            if entry is not None:
                _PLANS.move_to_end(key)
                return entry[1]

    plan = _C.QuantizedForwardPlan(
        weight_q.detach().contiguous().numpy(),
        stride=stride,
        padding=padding,
        pool_kernel=pool_kernel,
        pool_stride=pool_stride,
        ceil_mode=ceil_mode,
    )
    logger.debug("quantized_conv_relu_pool: packed weight %s for kernel %s", tuple(weight_q.shape), plan.kernel)
    if key is not None:
        with _PLANS_LOCK:
            _PLANS[key] = (weight_q, plan)
            if len(_PLANS) > _MAX_PLANS:
                _PLANS.popitem(last=False)
    return plan


def native_quantized_forward(
    x: torch.Tensor,
    weight_q: torch.Tensor,
    bias_q: torch.Tensor | None,
    multiplier: torch.Tensor,
    *,
    input_scale: float,
    input_zero_point: int,
    output_scale: float,
    output_zero_point: int,
    arguments: tuple[Pair, Pair, Pair, Pair, bool],
    relu: bool,
    output_dtype: torch.dtype,
) -> torch.Tensor | None:
    """Run a call that :func:`runs_native` accepts on the native kernel.

    Args:
        x: float32 or uint8 input of shape ``(N, C, H, W)`` on the CPU.
        weight_q: int8 weight of shape ``(O, C, KH, KW)``.
        bias_q: int32 bias of shape ``(O,)``, or None.
        multiplier: float requantization multipliers of shape ``(O,)``.
        input_scale: scale of the input quantization.
        input_zero_point: zero point of the input quantization.
        output_scale: scale of the output quantization.
        output_zero_point: zero point of the output quantization.
        arguments: ``(stride, padding, pool_kernel, pool_stride, ceil_mode)``
            with every size as a ``(height, width)`` pair.
        relu: whether to apply ReLU before requantization.
        output_dtype: ``torch.uint8`` or ``torch.float32``.

    Returns:
        The output, or None when an accumulator could leave the int32 range
        for this bias and input zero point, so the caller must use the reference.

    Raises:
        ValueError: if a scale, zero point or multiplier is invalid.
    """
    plan = _plan_for(weight_q, arguments)
    pooled_height, pooled_width = plan.output_size(x.shape[2], x.shape[3])
    output = torch.empty((x.shape[0], weight_q.shape[0], pooled_height, pooled_width), dtype=output_dtype)
    ran = plan.forward(
        _as_array(x),
        None if bias_q is None else _as_array(bias_q),
        _as_array(multiplier if multiplier.dtype is torch.float32 else multiplier.to(torch.float32)),
        output.numpy(),
        input_scale=float(input_scale),
        input_zero_point=int(input_zero_point),
        output_scale=float(output_scale),
        output_zero_point=int(output_zero_point),
        relu=bool(relu),
        num_threads=torch.get_num_threads(),
    )
    if not ran:
        logger.debug("quantized_conv_relu_pool: int32 accumulators could overflow, running the reference")
        return None
    return output
