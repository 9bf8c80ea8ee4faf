"""Ending a ``torch.distributed`` run so that no rank aborts while the interpreter shuts down."""

from __future__ import annotations

import time

import torch.distributed as dist

__all__ = ["end_distributed"]


def end_distributed(settle_seconds: float = 0.2) -> None:
    """Wait for every rank, destroy the default process group, then let gloo's worker threads finish.

    A gloo worker thread frees each collective's tensors itself once the collective is done, and freeing a
    tensor that Python created takes the GIL. ``DistributedDataParallel`` keeps the process group (and so its
    worker threads) alive past ``destroy_process_group``; when a rank then reaches interpreter shutdown while a
    worker still waits for the GIL (typically right after the validation metric's ``all_gather``), CPython ends
    that thread inside a destructor and the rank aborts with "terminate called without an active exception"
    (pytorch/pytorch#190489; seen here in about one torchrun run in ten on two CPU cores). The barrier keeps the
    ranks together to the end; the pause releases the GIL so the workers drop those tensors while the
    interpreter is still whole. Nothing happens when no process group is initialised.

    Args:
        settle_seconds: how long the calling thread releases the GIL after the barrier (gloo only; NCCL's
            collectives hold no Python tensors in worker threads).

    Example:
        >>> end_distributed()  # not initialised: a no-op
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    settle = dist.get_backend() == "gloo"
    dist.barrier()
    dist.destroy_process_group()
    if settle:
        time.sleep(settle_seconds)
