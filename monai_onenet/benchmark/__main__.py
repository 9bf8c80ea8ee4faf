"""``python -m monai_onenet.benchmark``: the paper's Table 2 beside what this machine measures.

For every model: exact parameters, FLOPs in the paper's convention and by ``torch.utils.flop_counter``, median
inference latency, real peak memory for inference and for one training step, and the ratio of latency and memory
to U-Net_4 measured in the same run. Each model runs in a fresh process with fixed allocator settings. Latency is
timed on a pass that follows one of the same model (as for a model serving a stream of images); "cold" on the pass
before it, which follows another model's (as in a pipeline that alternates models). Models that share an input
are timed interleaved, round by round.

``python -m monai_onenet.benchmark accuracy --help``: the accuracy benchmark (train every model on the same data).
``python -m monai_onenet.benchmark sequence_conv``: the paper's spatial conv timed three ways.
``python -m monai_onenet.benchmark train_step --help``: training-step time of accuracy-benchmark models, as ratios
to the first, timed interleaved.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import torch
from tqdm import tqdm

from monai_onenet.benchmark.flops import paper_flops, real_flops
from monai_onenet.benchmark.measure import (
    ALLOCATOR_ENV,
    COLD_SUFFIX,
    ROUNDS_SUFFIX,
    answer_request,
    resolve_device,
    seeded_runner,
    timed_ms,
)
from monai_onenet.benchmark.models import TABLE2, benchmark_models
from monai_onenet.benchmark.report import write_json

BASELINE = "unet_4"
BASELINE_3D = "basicunet_3d"
ONNX_ROW = "onenet_ed_4"
# ONNX Runtime against eager torch: single passes of two resident processes in turn, each pair in ABBA order, after
# a pause that lets the other's threads go idle. Medians of fresh processes moved with the machine's speed: 5
# alternations gave 0.88x and 16 rounds 1.11x on the same code within one hour (single passes 111-205 ms); 40 pairs
# of passes gave 0.99-1.04x.
ONNX_PAIRS = 40
QUICK_ONNX_PAIRS = 4
PAIR_PAUSE_S = 0.05


def _parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m monai_onenet.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="16x narrower models, 64^2 / 32^3 inputs (seconds).")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH.")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available).")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's current number).")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per model (default 7; quick 2).")
    parser.add_argument("--models", nargs="+", default=None, help="subset of rows to run (default: all).")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="measure in this process: faster, but heap reuse between models makes the RSS figures unreliable.",
    )
    return parser.parse_args(argv)


def _full_request(request: Dict[str, Any], args: argparse.Namespace, device: str) -> Dict[str, Any]:
    """``request`` with the run's settings (sizes, threads, device, repeats, warm-up)."""
    return {
        **request,
        "quick": args.quick,
        "threads": args.threads,
        "device": device,
        "repeats": args.repeats,
        "warmup": 2,
    }


def _isolated(request: Dict[str, Any], args: argparse.Namespace, device: str) -> Dict[str, Any]:
    """Run one measurement request in a fresh process with the fixed allocator settings."""
    request = _full_request(request, args, device)
    env = {**os.environ, **ALLOCATOR_ENV, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(
        [sys.executable, "-m", "monai_onenet.benchmark.measure", json.dumps(request)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {request} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _in_process(request: Dict[str, Any], args: argparse.Namespace, device: str) -> Dict[str, Any]:
    """Run one measurement request in this process."""
    return answer_request(_full_request(request, args, device))


def _round_ratios(row: Dict[str, Any], baseline: Dict[str, Any]) -> List[float]:
    """``row``'s latency over ``baseline``'s, round by round (both were timed in each round of their group)."""
    return [time / base for time, base in zip(row["latency_rounds_ms"], baseline["latency_rounds_ms"])]


def _ratio(value: Optional[float], baseline: Optional[float], comparable: bool = True) -> Optional[float]:
    return value / baseline if comparable and value is not None and baseline is not None else None


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Measure every selected model; returns ``{"device", "threads", "rows": [...]}``."""
    device = str(resolve_device(args.device))
    args.threads = args.threads or torch.get_num_threads()
    args.repeats = args.repeats or (2 if args.quick else 7)
    torch.set_num_threads(args.threads)
    measure_request = _in_process if args.in_process else _isolated
    models = benchmark_models(args.quick)
    if args.models:
        unknown = set(args.models) - {m.name for m in models}
        if unknown:
            raise SystemExit(f"unknown model(s) {sorted(unknown)}; choose from {[m.name for m in models]}")
        models = [m for m in models if m.name in args.models or m.name in (BASELINE, BASELINE_3D)]
    onnx_rows = [ONNX_ROW] if device == "cpu" and _has_onnxruntime() and ONNX_ROW in [m.name for m in models] else []
    # Models that share an input are timed together, interleaved, so that their ratios are robust to drift.
    groups: Dict[tuple, List[str]] = {}
    for spec in models:
        groups.setdefault(spec.input_shape, []).append(spec.name)

    rows: Dict[str, Dict[str, Any]] = {}
    steps = len(models) + len(groups) + len(onnx_rows)
    with tqdm(total=steps, desc="benchmark", unit="step", file=sys.stderr) as progress:
        for spec in models:
            net = spec.build()
            x = torch.randn(*spec.input_shape)
            row: Dict[str, Any] = {
                "model": spec.name,
                "input": list(spec.input_shape),
                "params": sum(p.numel() for p in net.parameters()),
                "gflops_paper": paper_flops(net, x) / 1e9,
                "gflops": real_flops(net, x) / 1e9,
                "note": spec.note,
            }
            del net
            for phase in ("infer", "train"):
                row.update(measure_request({"what": phase, "model": spec.name}, args, device))
            rows[spec.name] = row
            progress.update()
        for names in groups.values():
            cold = len(names) > 1  # alone in its group, a model's first pass of a round follows its own
            latencies = measure_request({"what": "latency", "models": names, "cold": cold}, args, device)
            for name in names:
                rows[name]["latency_ms"] = latencies[name]
                rows[name]["latency_cold_ms"] = latencies[name + COLD_SUFFIX] if cold else None
                rows[name]["latency_rounds_ms"] = latencies[name + ROUNDS_SUFFIX]
            progress.update()
        for name in onnx_rows:
            rows[name].update(_onnxruntime_against_eager(name, args, device))
            progress.update()

    baseline = rows[BASELINE]
    baseline_3d = rows.get(BASELINE_3D)
    for row in rows.values():
        same_input = row["input"] == baseline["input"]
        row["latency_ratio_vs_unet4"] = _ratio(row["latency_ms"], baseline["latency_ms"], same_input)
        row["latency_round_ratios_vs_unet4"] = _round_ratios(row, baseline) if same_input else None
        row["latency_cold_ratio_vs_unet4"] = _ratio(row["latency_cold_ms"], baseline["latency_cold_ms"], same_input)
        row["infer_mem_ratio_vs_unet4"] = (
            row["peak_infer_mb"] / baseline["peak_infer_mb"] if same_input and baseline["peak_infer_mb"] > 0 else None
        )
        if baseline_3d is not None and row["input"] == baseline_3d["input"]:
            row["latency_ratio_vs_basicunet_3d"] = _ratio(row["latency_ms"], baseline_3d["latency_ms"])
            row["latency_round_ratios_vs_basicunet_3d"] = _round_ratios(row, baseline_3d)
            row["latency_cold_ratio_vs_basicunet_3d"] = _ratio(row["latency_cold_ms"], baseline_3d["latency_cold_ms"])
    return {"device": device, "threads": args.threads, "quick": args.quick, "rows": list(rows.values())}


def _onnxruntime_against_eager(name: str, args: argparse.Namespace, device: str) -> Dict[str, Any]:
    """Latency of ``name`` in ONNX Runtime and in eager torch, timed pass by pass in turn (:func:`_timed_pairs`),
    each in a process of its own that stays warm (in this process with ``--in-process``), both with the same
    weights: the medians of each, and the median of the per-pair ratios, which cancels the drift of the machine's
    speed between pairs."""
    pairs = QUICK_ONNX_PAIRS if args.quick else ONNX_PAIRS
    if args.in_process:
        spec = {m.name: m for m in benchmark_models(args.quick)}[name]
        torch_device = torch.device(device)
        eager = seeded_runner(spec, torch_device, args.threads)
        onnx = seeded_runner(spec, torch_device, args.threads, onnxruntime=True)
        for runner in (eager, onnx, eager, onnx):
            runner()
        passes = {"eager": functools.partial(timed_ms, eager, torch_device)}
        passes["onnx"] = functools.partial(timed_ms, onnx, torch_device)
        times = _timed_pairs(passes, pairs)
        timing = "in this process"
    else:
        with _PassServer(name, False, args, device) as eager_server, _PassServer(name, True, args, device) as onnx:
            times = _timed_pairs({"eager": eager_server.timed_pass, "onnx": onnx.timed_pass}, pairs)
        timing = "each runtime in a process of its own"
    ratios = [o / e for o, e in zip(times["onnx"], times["eager"])]
    return {
        "latency_onnxruntime_ms": statistics.median(times["onnx"]),
        "latency_eager_alone_ms": statistics.median(times["eager"]),
        "onnxruntime_ratio_vs_eager": statistics.median(ratios),
        "onnxruntime_pair_ratios": ratios,
        "onnxruntime_timing": timing,
    }


def _timed_pairs(passes: Dict[str, Callable[[], float]], pairs: int) -> Dict[str, List[float]]:
    """Call each of the two timed passes once per pair, in ABBA order (the two take turns going first), after a
    pause of :data:`PAIR_PAUSE_S`; returns each one's milliseconds, pair by pair."""
    names = list(passes)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for index in range(pairs):
        for name in names if index % 2 == 0 else names[::-1]:
            time.sleep(PAIR_PAUSE_S)
            times[name].append(passes[name]())
    return times


class _PassServer:
    """A fresh process (fixed allocator settings) that keeps one model warm, eager or in ONNX Runtime, and times one
    pass of it on demand (:func:`~monai_onenet.benchmark.measure.serve_passes`). A process that stops raises a
    ``RuntimeError`` with the end of its stderr."""

    def __init__(self, name: str, onnxruntime: bool, args: argparse.Namespace, device: str):
        request = {"what": "serve", "model": name, "onnxruntime": onnxruntime, "quick": args.quick}
        request.update({"threads": args.threads, "device": device, "warmup": 2})
        self._errors = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "monai_onenet.benchmark.measure", json.dumps(request)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            env={**os.environ, **ALLOCATOR_ENV, "OMP_NUM_THREADS": str(args.threads)},
        )
        self._read("ready")

    def _stopped(self, said: str) -> RuntimeError:
        self.close()
        return RuntimeError(f"the timing process stopped (it said {said!r}):\n{self._stderr_tail}")

    def _read(self, expected: Optional[str] = None) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line or (expected is not None and line != expected):
            raise self._stopped(line)
        return line

    def timed_pass(self) -> float:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write("pass\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise self._stopped("") from None
        return float(self._read())

    def close(self) -> None:
        """End the process (the end of its input stops it; killed if it does not within a minute)."""
        if self._errors.closed:
            return
        try:
            if self._process.stdin is not None:
                self._process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._errors.seek(0)
            self._stderr_tail = self._errors.read()[-2000:]
            self._errors.close()

    def __enter__(self) -> _PassServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _quartiles(values: List[float]) -> str:
    """``"low-high"``: the first and third quartiles of ``values``, or ``"-"`` for fewer than two."""
    if len(values) < 2:
        return "-"
    low, _, high = statistics.quantiles(values, n=4)
    return f"{low:.2f}-{high:.2f}"


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(result: Dict[str, Any]) -> str:
    """The rows as a Markdown table, the paper's Table 2 figures beside the measured ones."""
    lines = [
        f"device: {result['device']}, threads: {result['threads']}" + (" (quick sizes)" if result["quick"] else ""),
        "",
        "| model | input | params | paper params (M) | GFLOPs, paper convention | paper GFLOPs | GFLOPs, flop_counter "
        "| latency ms | x U-Net_4 (3D: x BasicUNet) | cold ms | x U-Net_4 (3D: x BasicUNet) | peak infer MB "
        "| x U-Net_4 | peak train MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        paper_params, paper_gflops = (None, None) if result["quick"] else TABLE2.get(row["model"], (None, None))
        latency_ratio = row["latency_ratio_vs_unet4"] or row.get("latency_ratio_vs_basicunet_3d")
        cold_ratio = row["latency_cold_ratio_vs_unet4"] or row.get("latency_cold_ratio_vs_basicunet_3d")
        cells = [
            row["model"],
            "x".join(map(str, row["input"])),
            f"{row['params']:,}",
            _fmt(paper_params),
            _fmt(row["gflops_paper"]),
            _fmt(paper_gflops),
            _fmt(row["gflops"]),
            _fmt(row["latency_ms"], 1),
            _fmt(latency_ratio),
            _fmt(row["latency_cold_ms"], 1),
            _fmt(cold_ratio),
            _fmt(row["peak_infer_mb"], 0),
            _fmt(row["infer_mem_ratio_vs_unet4"]),
            _fmt(row["peak_train_mb"], 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    faithful = next((row for row in result["rows"] if row["model"] == ONNX_ROW), None)
    if faithful is not None and faithful.get("latency_round_ratios_vs_unet4"):
        round_ratios = faithful["latency_round_ratios_vs_unet4"]
        lines += [
            "",
            f"{ONNX_ROW} against {BASELINE}, round by round: median {statistics.median(round_ratios):.2f}x, "
            f"quartiles {_quartiles(round_ratios)} over {len(round_ratios)} rounds (the table divides the medians).",
        ]
    for row in result["rows"]:
        if "latency_onnxruntime_ms" in row:
            pair_ratios = row["onnxruntime_pair_ratios"]
            lines += [
                "",
                f"{row['model']} in ONNX Runtime (opset 17, phase-folded export, CPU, same threads): "
                f"{row['latency_onnxruntime_ms']:.1f} ms vs {row['latency_eager_alone_ms']:.1f} ms eager torch "
                f"(median of {len(pair_ratios)} pair ratios: {row['onnxruntime_ratio_vs_eager']:.2f}x, quartiles "
                f"{_quartiles(pair_ratios)}; single passes in turn, {row['onnxruntime_timing']}).",
            ]
    cached = [row for row in result["rows"] if row.get("cached_weights_mb", 0) > 0]
    if cached:
        lines += [
            "",
            "Eval-mode OneNet also keeps one folded copy of its 1x1 weights after the first pass (not in the peaks): "
            + ", ".join(f"{row['model']} {row['cached_weights_mb']:.0f} MB" for row in cached)
            + ".",
        ]
    lines += [
        "",
        "Paper convention = 2 x torchinfo mult-adds, top head only; it charges a transposed conv by its output size, "
        "~4x its real work in 2D, so it overstates the U-Net and OneNet_e rows. flop_counter counts executed "
        "convolutions and matmuls (2 per multiply-add) at their true cost.",
        "",
        "Latency: median over rounds of a pass timed right after one of the same model (a model serving a stream "
        "of images). Cold: the pass before it, right after another model's pass (a pipeline that alternates "
        "models): memory-bound models lose more there than compute-bound ones.",
    ]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["accuracy"]:
        from monai_onenet.benchmark.accuracy import main as accuracy_main

        return accuracy_main(argv[1:])
    if argv[:1] == ["train_step"]:
        from monai_onenet.benchmark.train_step import main as train_step_main

        return train_step_main(argv[1:])
    if argv[:1] == ["sequence_conv"]:
        from monai_onenet.benchmark.sequence_conv import main as sequence_conv_main

        return sequence_conv_main(argv[1:])
    args = _parse_args(argv)
    result = run(args)
    print(markdown_table(result))
    write_json(result, args.json)
    return result


if __name__ == "__main__":
    main()
