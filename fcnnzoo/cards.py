"""Model cards computed from the built model rather than typed by hand.

A card contains what an architecture's spec declares (description, plugin,
default input size, channels, classes, tags) and what only the model itself
can tell: its parameter count, its multiply-accumulate count at the default
input size and, for fully convolutional models, the smallest input it
accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fcnnzoo.specs import ArchitectureSpec

__all__ = ["compute_card", "count_macs", "count_parameters", "find_min_input_size"]


def count_parameters(model: nn.Module) -> int:
    """Return the number of scalar parameters of ``model``, shared parameters counted once."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_macs(model: nn.Module, images: torch.Tensor) -> int:
    """Return the multiply-accumulate operations of one forward pass of ``images``.

    Convolutions and matrix products count (PyTorch's FLOP counter reports
    two FLOPs per multiply-accumulate); activations, pooling and
    normalization do not, as is usual for MAC counts.

    NOTE: operations the counter does not know, such as the fused
    conv-ReLU-pool op, count as zero, so pass a model built with
    ``fused=False``, where every block runs ``torch.nn.functional.conv2d``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops() // 2


def _accepts(model: nn.Module, in_channels: int, height: int, width: int) -> bool:
    import torch

    images = torch.zeros(1, in_channels, height, width)
    try:
        with torch.no_grad():
            logits = model(images)
    # Models reject a too small input with whatever error their first
    # failing layer raises (RuntimeError from a convolution, ValueError from
    # an argument check), so any exception means "not accepted".
    except Exception:
        return False
    return bool(torch.isfinite(logits).all())


def find_min_input_size(model: nn.Module, in_channels: int, input_size: tuple[int, int]) -> tuple[int, int] | None:
    """Return the smallest ``(height, width)`` at which ``model`` gives finite logits.

    The height is searched from 1 up with the width at its default, then
    the width with the height at its default, one forward pass of a single
    image per candidate.

    Returns:
        The pair, or None if the model accepts nothing smaller than
        ``input_size`` along either axis.
    """
    default_height, default_width = input_size
    height = next((h for h in range(1, default_height + 1) if _accepts(model, in_channels, h, default_width)), default_height)
    width = next((w for w in range(1, default_width + 1) if _accepts(model, in_channels, default_height, w)), default_width)
    if (height, width) == (default_height, default_width):
        return None
    return (height, width)


def compute_card(spec: ArchitectureSpec, model: nn.Module, *, display_name: str) -> dict[str, Any]:
    """Build the card of ``spec`` from ``model``, a default build of it with ``fused=False``.

    Args:
        spec: the registered spec.
        model: the model built with the spec's default arguments.
        display_name: the name that selects the architecture (qualified if
            several plugins register its bare name).

    Returns:
        A JSON-friendly dictionary. ``min_input_size`` is searched only for
        an architecture that declares one, which marks it as fully
        convolutional, and is None otherwise.
    """
    import torch

    model.eval()
    images = torch.zeros(1, spec.in_channels, *spec.input_size)
    macs = count_macs(model, images)
    # Counted after the forward pass, which materializes lazy modules' parameters.
    params = count_parameters(model)
    min_input_size = None
    if spec.min_input_size is not None:
        found = find_min_input_size(model, spec.in_channels, spec.input_size)
        min_input_size = list(found) if found is not None else list(spec.input_size)

    return {
        "name": display_name,
        "qualified_name": f"{spec.plugin}:{spec.name}",
        "description": spec.description,
        "plugin": spec.plugin,
        "distribution": spec.distribution,
        "version": spec.version,
        "in_channels": spec.in_channels,
        "num_classes": spec.num_classes,
        "input_size": list(spec.input_size),
        "min_input_size": min_input_size,
        "tags": list(spec.tags),
        "params": params,
        "macs": macs,
    }
