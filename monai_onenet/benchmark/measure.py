"""Latency and real peak memory of one model, on CPU or CUDA.

CPU peak memory is the rise of the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``)
over its resident set before the pass, so weights are excluded and every allocation the pass makes (activations,
gradients, oneDNN scratch) is included. Run each model in a fresh process with the allocator settings of
:data:`ALLOCATOR_ENV` so that reruns agree.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from typing import Dict, List

import torch
import torch.nn as nn

__all__ = ["ALLOCATOR_ENV", "measure", "measure_latency", "measure_onnxruntime", "peak_memory_mb"]

# glibc's adaptive mmap threshold moves after large frees, so one model's latency moved from 246 to 443 ms between
# runs. Fixed thresholds keep large blocks on the heap, reused without page faults, and never trimmed mid-run.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(64 * 1024**3)}


def _read_status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb(fn, device: torch.device) -> float:
    """Peak memory (MiB) that ``fn()`` adds on ``device``; NaN where it cannot be measured."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    if not _reset_peak_rss():
        return float("nan")
    base = _read_status_kb("VmRSS")
    fn()
    return (_read_status_kb("VmHWM") - base) / 1024


def measure_latency(fn, device: torch.device, warmup: int = 2, repeats: int = 7) -> float:
    """Median wall time of ``fn()`` in ms after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _training_step(model: nn.Module, x: torch.Tensor) -> None:
    """Forward in train mode (every deep-supervision head), cross-entropy on each head, backward."""
    model.train()
    output = model(x)
    heads = output[0] if isinstance(output, tuple) else output
    heads = heads if isinstance(heads, list) else [heads]
    loss = x.new_zeros(())
    for logits in heads:
        target = torch.zeros((logits.shape[0],) + tuple(logits.shape[2:]), dtype=torch.long, device=x.device)
        loss = loss + nn.functional.cross_entropy(logits, target)
    loss.backward()


def measure(
    model: nn.Module, input_shape, device: torch.device, repeats: int = 7, warmup: int = 2, what: str = "all"
) -> Dict[str, float]:
    """Inference peak memory and latency (``what="infer"``), training-step peak memory (``"train"``), or both."""
    torch.manual_seed(0)
    model = model.to(device)
    x = torch.randn(*input_shape, device=device)
    result: Dict[str, float] = {}
    if what in ("all", "infer"):
        model.eval()

        def infer() -> None:
            with torch.no_grad():
                model(x)

        result["peak_infer_mb"] = peak_memory_mb(infer, device)
        result["latency_ms"] = measure_latency(infer, device, warmup, repeats)
    if what in ("all", "train"):
        result["peak_train_mb"] = peak_memory_mb(lambda: _training_step(model, x), device)
        model.zero_grad(set_to_none=True)
    return result


def measure_onnxruntime(model: nn.Module, input_shape, threads: int, repeats: int = 7, warmup: int = 2) -> float:
    """Median CPU latency (ms) of ``model`` exported to ONNX (opset 17) and run by ONNX Runtime."""
    import tempfile

    import onnxruntime

    from monai_onenet.networks import export_onnx

    x = torch.randn(*input_shape)
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, x, f"{folder}/model.onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return measure_latency(lambda: session.run(None, feed), torch.device("cpu"), warmup, repeats)


def _worker() -> None:
    """``python -m monai_onenet.benchmark.measure '<json request>'``: measure one model, print JSON."""
    from monai_onenet.benchmark.models import benchmark_models

    request = json.loads(sys.argv[1])
    torch.set_num_threads(request["threads"])
    spec = {m.name: m for m in benchmark_models(request["quick"])}[request["model"]]
    device = torch.device(request["device"])
    if request["what"] == "onnxruntime":
        latency = measure_onnxruntime(spec.build(), spec.input_shape, request["threads"], request["repeats"])
        print(json.dumps({"latency_ms": latency}))
        return
    result = measure(spec.build(), spec.input_shape, device, request["repeats"], request["warmup"], request["what"])
    print(json.dumps(result))


if __name__ == "__main__":
    _worker()
