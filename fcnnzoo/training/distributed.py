"""Multi-process training with ``torch.distributed``, as started by ``torchrun``.

:func:`context_from_environment` reads the variables that ``torchrun`` sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)
and :func:`process_group` joins the group for the length of a ``with``
block: gloo on the CPU, nccl when CUDA is available. A process started
without these variables gets ``None`` and trains alone, as before.

The training engine calls :func:`current_group` to find an active group.
Inside one, ``batch_size`` is the global batch: every process takes
``batch_size // world_size`` examples per step and DistributedDataParallel
averages the gradients, so one step sees the same number of examples as a
single process with the same ``batch_size``.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import torch
import torch.distributed as dist

__all__ = [
    "DIST_ERRORS",
    "ENVIRONMENT_VARIABLES",
    "DistributedContext",
    "GroupInfo",
    "all_reduce_sums",
    "broadcast_flag",
    "check_world_size",
    "context_from_environment",
    "current_group",
    "is_main_process",
    "process_group",
]

logger = logging.getLogger(__name__)

ENVIRONMENT_VARIABLES: Final = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Time a collective waits for an unresponsive process before it fails.
DEFAULT_TIMEOUT: Final = datetime.timedelta(minutes=5)
# Exceptions of a collective whose peer process failed, hung or is unreachable.
DIST_ERRORS: Final = (dist.DistError,)


@dataclass(frozen=True)
class DistributedContext:
    """One process's place in a ``torchrun`` job.

    Attributes:
        rank: the process's index among all processes, 0 for the main one.
        world_size: the number of processes.
        local_rank: the process's index on its machine, which picks its GPU.
        backend: ``"nccl"`` when CUDA is available, else ``"gloo"``.
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def device(self) -> torch.device:
        """The device this process trains on: its own GPU under nccl, else the CPU."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


@dataclass(frozen=True)
class GroupInfo:
    """The rank and size of the active process group, and where its collectives run."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files and logs."""
        return self.rank == 0


def context_from_environment(environ: Mapping[str, str] | None = None) -> DistributedContext | None:
    """Read a ``torchrun`` job's variables from the environment.

    Args:
        environ: the variables; ``None`` means ``os.environ``.

    Returns:
        The process's context, or ``None`` when neither ``RANK`` nor
        ``WORLD_SIZE`` is set (a plain single process).

    Raises:
        ValueError: if some of the variables are missing or hold invalid values.
    """
    environ = os.environ if environ is None else environ
    if "RANK" not in environ and "WORLD_SIZE" not in environ:
        return None
    missing = [name for name in ENVIRONMENT_VARIABLES if not environ.get(name)]
    if missing:
        raise ValueError(
            f"Distributed training needs the variables {', '.join(ENVIRONMENT_VARIABLES)}, but {', '.join(missing)} "
            "are not set. Start the job with 'torchrun --nproc-per-node N -m fcnnzoo train ...', or unset RANK and "
            "WORLD_SIZE to train in one process."
        )
    rank = _read_int(environ, "RANK", minimum=0)
    world_size = _read_int(environ, "WORLD_SIZE", minimum=1)
    local_rank = _read_int(environ, "LOCAL_RANK", minimum=0)
    _read_int(environ, "MASTER_PORT", minimum=1)
    if rank >= world_size:
        raise ValueError(f"RANK must be below WORLD_SIZE={world_size}, got RANK={rank}.")
    backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, backend=backend)


@contextlib.contextmanager
def process_group(context: DistributedContext | None, timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Join the process group of ``context`` for the ``with`` block, then leave it.

    Does nothing when ``context`` is ``None``.

    Raises:
        RuntimeError: if torch was built without ``torch.distributed``, or
            the group cannot be formed within ``timeout``.
    """
    if context is None:
        yield
        return
    if not dist.is_available():
        raise RuntimeError("This build of torch has no torch.distributed, so it cannot train in several processes.")
    if context.backend == "nccl":
        torch.cuda.set_device(context.device)
    dist.init_process_group(backend=context.backend, rank=context.rank, world_size=context.world_size, timeout=timeout)
    logger.debug("Joined the %s process group as rank %d of %d", context.backend, context.rank, context.world_size)
    try:
        yield
        # Rank 0 may still be writing files. Leaving together keeps an early exit from looking like a failed peer.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def current_group() -> GroupInfo | None:
    """Return the active process group's rank, size and collective device, or ``None`` outside one."""
    if not dist.is_available() or not dist.is_initialized():
        return None
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    return GroupInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def is_main_process() -> bool:
    """Whether this process should write files and logs: rank 0, or a process outside any group."""
    group = current_group()
    return group is None or group.is_main


def check_world_size(world_size: int, *, batch_size: int, train_examples: int) -> None:
    """Check that ``world_size`` processes can share the global batch and the train split.

    Raises:
        ValueError: if ``batch_size`` is not a multiple of ``world_size``, or
            the train split has fewer examples than processes.
    """
    if train_examples < world_size:
        raise ValueError(
            f"The train split has {train_examples} examples, fewer than the {world_size} processes. "
            f"Start at most {train_examples} processes (--nproc-per-node)."
        )
    if batch_size % world_size != 0:
        lower = max(world_size, batch_size - batch_size % world_size)
        raise ValueError(
            f"--batch-size {batch_size} is the global batch and must be a multiple of the {world_size} processes. "
            f"Use {lower} or {lower + world_size}."
        )


def all_reduce_sums(values: Sequence[float], group: GroupInfo) -> list[float]:
    """Add ``values`` element-wise over all processes of ``group``, in float64."""
    tensor = torch.tensor(list(values), dtype=torch.float64, device=group.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_flag(flag: bool, group: GroupInfo) -> bool:
    """Return rank 0's ``flag`` on every process of ``group``, so that all take the same branch."""
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int64, device=group.device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def _read_int(environ: Mapping[str, str], name: str, *, minimum: int) -> int:
    text = environ[name]
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an int, got {text!r}. torchrun sets it; do not set it by hand.") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return value
