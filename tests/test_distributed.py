"""`end_distributed`: the end of every multi-GPU bundle run (two gloo processes on CPU here)."""

from __future__ import annotations

import gc
import socket
import weakref

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from monai_onenet.engines import end_distributed


def _gather_then_end(rank: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    # DistributedDataParallel keeps the process group and its worker threads alive after it is destroyed,
    # as in the bundles; the gathered tensors are what a worker thread may still hold.
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
    sent, gathered = torch.full((4,), float(rank)), [torch.empty(4) for _ in range(2)]
    dist.all_gather(gathered, sent)
    values = [t[0].item() for t in gathered]
    watched = [weakref.ref(t) for t in (sent, *gathered)]
    del sent, gathered
    end_distributed()
    gc.collect()
    results[rank] = (values, dist.is_initialized(), sum(ref() is not None for ref in watched))
    del model


def test_end_distributed_destroys_the_group_and_releases_gathered_tensors():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_gather_then_end, args=(port, results), nprocs=2)
    for rank in (0, 1):
        values, still_initialized, tensors_alive = results[rank]
        assert values == [0.0, 1.0]
        assert not still_initialized
        assert tensors_alive == 0, "a gloo worker still holds tensors Python made when the interpreter may exit"


def test_end_distributed_without_a_process_group_does_nothing():
    assert not dist.is_initialized()
    end_distributed()
    assert not dist.is_initialized()
