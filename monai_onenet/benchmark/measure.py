"""Latency and real peak memory of one model, on CPU or CUDA.

Peak memory is measured two ways, weights excluded in both:

- *live*: the peak of tensor bytes held by PyTorch's allocator during the pass, above what was held before it. On
  CUDA that is ``max_memory_allocated``; on the CPU it comes from the profiler's memory timeline. It does not
  depend on the C allocator, so it is the figure to compare models by.
- *rss*: the rise of the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) during
  the first pass in a fresh process. It also counts oneDNN scratch and what glibc keeps after frees. Run each model
  in a fresh process with the allocator settings of :data:`ALLOCATOR_ENV` so that reruns agree.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, TextIO

import torch
import torch.nn as nn

from monai_onenet.networks.blocks import cached_weight_bytes

if TYPE_CHECKING:
    from monai_onenet.benchmark.models import BenchmarkModel

__all__ = [
    "ALLOCATOR_ENV",
    "answer_request",
    "seeded_runner",
    "serve_passes",
    "settle_allocator",
    "ONNXRUNTIME_SUFFIX",
    "COLD_SUFFIX",
    "ROUNDS_SUFFIX",
    "inference_runner",
    "measure_latencies",
    "measure_latency_rounds",
    "latency_summary",
    "measure_memory",
    "onnxruntime_runner",
    "peak_memory_mb",
    "peak_rss_mb",
    "resolve_device",
    "timed_ms",
]

# glibc's adaptive mmap threshold moves after large frees, so one model's latency moved from 246 to 443 ms between
# runs. Fixed thresholds keep large blocks on the heap, reused without page faults, and never trimmed mid-run.
ONNXRUNTIME_SUFFIX = "@onnxruntime"
COLD_SUFFIX = "@cold"
ROUNDS_SUFFIX = "@rounds"
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(64 * 1024**3)}


def settle_allocator() -> bool:
    """Give this running process the fixed thresholds of :data:`ALLOCATOR_ENV` (glibc's ``mallopt``).

    For measurements that stay in one process, such as training. The trim threshold is capped at 2 GiB, the most
    ``mallopt`` takes.

    Returns:
        Whether both thresholds were set; False where the C library is not glibc (nothing is changed then).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mmap_ok = mallopt(m_mmap_threshold, int(ALLOCATOR_ENV["MALLOC_MMAP_THRESHOLD_"])) == 1
    trim_ok = mallopt(m_trim_threshold, min(int(ALLOCATOR_ENV["MALLOC_TRIM_THRESHOLD_"]), 2**31 - 1)) == 1
    return mmap_ok and trim_ok


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; any other name (``"cpu"``, ``"cuda:1"``) as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def peak_rss_mb(fn: Callable[[], None]) -> float:
    """Rise of the CPU process's peak resident set (MiB) while ``fn()`` runs; NaN where Linux does not tell."""
    gc.collect()
    if not _reset_peak_rss():
        return float("nan")
    base = _read_status_kb("VmRSS")
    fn()
    return (_read_status_kb("VmHWM") - base) / 1024


def peak_memory_mb(fn: Callable[[], None], device: torch.device) -> float:
    """Peak of live tensor memory (MiB) that ``fn()`` adds on ``device``, above what was allocated before."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        torch.empty(1)  # a first, negligible event: the timeline's first point is then what existed before fn
        fn()
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export_memory_timeline is marked deprecated in favour of a CUDA-only API
        path = os.path.join(folder, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path) as timeline:
            _, sizes = json.load(timeline)
    totals = [sum(categories) for categories in sizes]
    return (max(totals) - totals[0]) / 2**20 if totals else 0.0


def timed_ms(fn: Callable[[], None], device: torch.device) -> float:
    """Wall time of one call of ``fn`` in milliseconds (CUDA synchronised before and after)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1000


def measure_latency_rounds(
    runners: Dict[str, Callable[[], None]],
    device: torch.device,
    warmup: int = 2,
    rounds: int = 7,
    cold_suffix: Optional[str] = None,
) -> Dict[str, List[float]]:
    """Wall times (ms) of each runner, one per round, timed in interleaved rounds (A, B, C, A, B, C, ...).

    Interleaving makes the ratios between models robust to the machine getting faster or slower during the run
    (other load, frequency changes), which moved single-model figures by up to 30% on a shared 2-core VM. Times of
    the same round index come from the same round, so their ratios pair passes timed seconds apart.

    With ``cold_suffix``, every runner runs twice in a row in each round (A A B B C C, ...). The second pass, after
    one of its own as for a model that serves a stream of images, is its latency; the first, right after another
    model's pass has filled the caches with that model's weights and maps, is reported as ``name + cold_suffix``.
    """
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    names = list(runners) + ([name + cold_suffix for name in runners] if cold_suffix is not None else [])
    times: Dict[str, List[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, fn in runners.items():
            if cold_suffix is not None:
                times[name + cold_suffix].append(timed_ms(fn, device))
            times[name].append(timed_ms(fn, device))
    return times


def measure_latencies(
    runners: Dict[str, Callable[[], None]],
    device: torch.device,
    warmup: int = 2,
    rounds: int = 7,
    cold_suffix: Optional[str] = None,
) -> Dict[str, float]:
    """Median wall time (ms) of each runner over :func:`measure_latency_rounds`."""
    times = measure_latency_rounds(runners, device, warmup, rounds, cold_suffix)
    return {name: statistics.median(values) for name, values in times.items()}


def latency_summary(times: Dict[str, List[float]]) -> Dict[str, Any]:
    """:func:`measure_latency_rounds`' times as a benchmark worker reports them: each name's median, and each
    name's rounds under ``name + ROUNDS_SUFFIX`` (cold passes: the median only)."""
    summary: Dict[str, Any] = {name: statistics.median(values) for name, values in times.items()}
    summary.update({name + ROUNDS_SUFFIX: values for name, values in times.items() if COLD_SUFFIX not in name})
    return summary


def inference_runner(model: nn.Module, input_shape, device: torch.device) -> Callable[[], None]:
    """A no-grad eval-mode forward of ``model`` on a fixed random input."""
    model = model.to(device).eval()
    x = torch.randn(*input_shape, device=device)

    def infer() -> None:
        with torch.no_grad():
            model(x)

    return infer


def onnxruntime_runner(model: nn.Module, input_shape, threads: int) -> Callable[[], None]:
    """``model`` exported to ONNX (opset 17) and run by ONNX Runtime on the CPU with ``threads`` threads."""
    import onnxruntime

    from monai_onenet.networks import export_onnx

    x = torch.randn(*input_shape)
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, x, os.path.join(folder, "model.onnx"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def seeded_runner(
    model: BenchmarkModel, device: torch.device, threads: int, onnxruntime: bool = False
) -> Callable[[], None]:
    """:func:`inference_runner` (or with ``onnxruntime`` :func:`onnxruntime_runner`) of ``model`` built from seed 0:
    every process that builds it times the same weights."""
    torch.manual_seed(0)
    if onnxruntime:
        return onnxruntime_runner(model.build(), model.input_shape, threads)
    return inference_runner(model.build(), model.input_shape, device)


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


def measure_memory(model: nn.Module, input_shape, device: torch.device, phase: str) -> Dict[str, float]:
    """Peak memory of one eval-mode forward (``phase="infer"``) or one training step (``"train"``).

    On the CPU both the live-tensor peak and the resident-set rise are reported; the latter only means something
    for the first pass in a fresh process.
    """
    torch.manual_seed(0)
    model = model.to(device)
    x = torch.randn(*input_shape, device=device)
    if phase == "infer":
        run = inference_runner(model, input_shape, device)
    elif phase == "train":

        def run() -> None:
            _training_step(model, x)
            model.zero_grad(set_to_none=True)

    else:
        raise ValueError(f"phase must be 'infer' or 'train', got {phase!r}.")
    result: Dict[str, float] = {}
    if device.type == "cpu":
        result[f"peak_{phase}_rss_mb"] = peak_rss_mb(run)
    result[f"peak_{phase}_mb"] = peak_memory_mb(run, device)
    if phase == "infer":  # kept from the first pass on, beside the weights: reported apart from the peak
        result["cached_weights_mb"] = cached_weight_bytes(model) / 2**20
    return result


def serve_passes(
    runner: Callable[[], None],
    device: torch.device,
    warmup: int,
    commands: Optional[TextIO] = None,
    replies: Optional[TextIO] = None,
) -> None:
    """Keep ``runner`` warm and time one pass of it per ``pass`` line read from ``commands`` (stdin), writing its
    milliseconds to ``replies`` (stdout), after a ``ready`` line once warmed up; ``stop`` or the end of the input
    ends it. Two such processes, driven in turn, time two runtimes pass by pass without sharing one process (ONNX
    Runtime's spinning worker threads slowed eager torch by 10-30% in one process).

    Example::

        >>> import io
        >>> replies = io.StringIO()
        >>> serve_passes(lambda: None, torch.device("cpu"), 1, io.StringIO("pass\\npass\\nstop\\n"), replies)
        >>> lines = replies.getvalue().split()
        >>> lines[0], len(lines), all(float(ms) >= 0 for ms in lines[1:])
        ('ready', 3, True)
    """
    commands = sys.stdin if commands is None else commands
    replies = sys.stdout if replies is None else replies
    for _ in range(warmup):
        runner()
    print("ready", file=replies, flush=True)
    for line in commands:
        if line.strip() != "pass":
            break
        print(f"{timed_ms(runner, device)!r}", file=replies, flush=True)


def answer_request(request: Dict[str, Any]) -> Dict[str, Any]:
    """The measurement a ``"latency"``, ``"infer"`` or ``"train"`` request asks for (see :func:`_worker`), in this
    process: :func:`latency_summary` of the models' interleaved rounds, or :func:`measure_memory` of one model."""
    from monai_onenet.benchmark.models import benchmark_models

    specs = {m.name: m for m in benchmark_models(request["quick"])}
    device = torch.device(request["device"])
    if request["what"] != "latency":
        spec = specs[request["model"]]
        return measure_memory(spec.build(), spec.input_shape, device, request["what"])
    runners = {
        name: inference_runner(specs[name].build(), specs[name].input_shape, device) for name in request["models"]
    }
    for name in request.get("onnxruntime", []):
        runners[name + ONNXRUNTIME_SUFFIX] = onnxruntime_runner(
            specs[name].build(), specs[name].input_shape, request["threads"]
        )
    cold_suffix = COLD_SUFFIX if request.get("cold") else None
    return latency_summary(measure_latency_rounds(runners, device, request["warmup"], request["repeats"], cold_suffix))


def _worker() -> None:
    """``python -m monai_onenet.benchmark.measure '<json request>'``: measure, print JSON.

    Requests: ``{"what": "infer" | "train", "model": name, ...}`` for memory, ``{"what": "latency",
    "models": [names], "onnxruntime": [names], ...}`` for interleaved latencies, or ``{"what": "serve",
    "model": name, "onnxruntime": bool, ...}`` for passes on demand (:func:`serve_passes`).
    """
    from monai_onenet.benchmark.models import benchmark_models

    request = json.loads(sys.argv[1])
    torch.set_num_threads(request["threads"])
    if request["what"] == "serve":
        # stdout carries the replies alone: whatever else writes to it, Python or C (oneDNN's verbose mode), goes
        # to stderr
        sys.stdout.flush()
        replies = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        spec = {m.name: m for m in benchmark_models(request["quick"])}[request["model"]]
        device = torch.device(request["device"])
        runner = seeded_runner(spec, device, request["threads"], request.get("onnxruntime", False))
        serve_passes(runner, device, request["warmup"], sys.stdin, replies)
        return
    print(json.dumps(answer_request(request)))


if __name__ == "__main__":
    _worker()
