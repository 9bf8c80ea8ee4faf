from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest
import torch

from monai_onenet.benchmark.__main__ import main
from monai_onenet.benchmark.measure import peak_memory_mb, peak_rss_mb
from monai_onenet.benchmark.models import benchmark_models

REQUIRED = {
    "model",
    "params",
    "gflops",
    "latency_ms",
    "peak_infer_mb",
    "peak_train_mb",
    "latency_ratio_vs_unet4",
    "infer_mem_ratio_vs_unet4",
}


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    main(["--quick", "--in-process", "--json", str(path), "--threads", "1"])
    return json.loads(path.read_text())


def test_quick_json_has_every_row_and_key(quick_result):
    assert quick_result["device"] == "cpu" and quick_result["threads"] == 1
    names = [row["model"] for row in quick_result["rows"]]
    assert names == [m.name for m in benchmark_models(quick=True)]
    for row in quick_result["rows"]:
        assert REQUIRED <= set(row), row["model"]
        assert row["params"] > 0 and row["gflops"] > 0 and row["latency_ms"] > 0
        assert row["peak_infer_mb"] > 0 and row["peak_train_mb"] > row["peak_infer_mb"]


def test_ratios_are_against_unet4_of_the_same_run(quick_result):
    rows = {row["model"]: row for row in quick_result["rows"]}
    base = rows["unet_4"]
    assert base["latency_ratio_vs_unet4"] == 1.0
    ed = rows["onenet_ed_4"]
    assert ed["latency_ratio_vs_unet4"] == pytest.approx(ed["latency_ms"] / base["latency_ms"])
    assert ed["latency_cold_ratio_vs_unet4"] == pytest.approx(ed["latency_cold_ms"] / base["latency_cold_ms"])
    assert rows["onenet_ed_4_3d"]["latency_ratio_vs_unet4"] is None  # other input: no ratio to the 2D baseline
    assert rows["onenet_ed_4_3d"]["latency_ratio_vs_basicunet_3d"] == pytest.approx(
        rows["onenet_ed_4_3d"]["latency_ms"] / rows["basicunet_3d"]["latency_ms"]
    )
    # round by round: each ratio pairs the two passes of one round (the --quick run has 2 rounds)
    assert len(ed["latency_rounds_ms"]) == len(base["latency_rounds_ms"]) == 2
    assert ed["latency_round_ratios_vs_unet4"] == pytest.approx(
        [time / unet for time, unet in zip(ed["latency_rounds_ms"], base["latency_rounds_ms"])]
    )
    assert ed["latency_ms"] == pytest.approx(statistics.median(ed["latency_rounds_ms"]))
    assert rows["onenet_ed_4_3d"]["latency_round_ratios_vs_unet4"] is None
    assert len(rows["onenet_ed_4_3d"]["latency_round_ratios_vs_basicunet_3d"]) == 2


def test_table_gives_the_faithful_models_round_ratios(quick_result):
    from monai_onenet.benchmark.__main__ import markdown_table

    ratios = {row["model"]: row for row in quick_result["rows"]}["onenet_ed_4"]["latency_round_ratios_vs_unet4"]
    assert f"onenet_ed_4 against unet_4, round by round: median {statistics.median(ratios):.2f}x" in markdown_table(
        quick_result
    )


def test_onnxruntime_row_is_timed_against_eager_alone(quick_result):
    pytest.importorskip("onnxruntime")
    rows = {row["model"]: row for row in quick_result["rows"]}
    ed = rows["onenet_ed_4"]
    assert ed["latency_onnxruntime_ms"] > 0 and ed["latency_eager_alone_ms"] > 0
    # the ratio is the median over pairs of passes timed in turn, not the ratio of the two medians
    assert len(ed["onnxruntime_pair_ratios"]) == 4 and all(r > 0 for r in ed["onnxruntime_pair_ratios"])
    assert ed["onnxruntime_timing"] == "in this process"  # the fixture runs --in-process
    assert ed["onnxruntime_ratio_vs_eager"] == pytest.approx(statistics.median(ed["onnxruntime_pair_ratios"]))
    assert [name for name, row in rows.items() if "latency_onnxruntime_ms" in row] == ["onenet_ed_4"]


def test_onenet_needs_fewer_flops_than_the_unet(quick_result):
    rows = {row["model"]: row for row in quick_result["rows"]}
    assert rows["onenet_ed_4"]["gflops"] < rows["onenet_e_4"]["gflops"] < rows["unet_4"]["gflops"]


def test_rss_peak_sees_an_allocation():
    size_mb = 64

    def allocate() -> None:
        block = torch.ones(size_mb * 2**20 // 4)
        assert block.sum() > 0

    measured = peak_rss_mb(allocate)
    assert size_mb * 0.9 <= measured <= size_mb * 2


def _worker(request):
    request = {"quick": True, "threads": 1, "device": "cpu", "repeats": 2, "warmup": 1, **request}
    done = subprocess.run(
        [sys.executable, "-m", "monai_onenet.benchmark.measure", json.dumps(request)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_isolated_worker_measures_memory_of_one_model():
    result = _worker({"what": "infer", "model": "onenet_ed_4"})
    assert set(result) == {"peak_infer_mb", "peak_infer_rss_mb", "cached_weights_mb"}
    assert result["peak_infer_mb"] > 0
    quick_net = {m.name: m for m in benchmark_models(quick=True)}["onenet_ed_4"].build()
    params_mb = sum(p.numel() * 4 for p in quick_net.parameters()) / 2**20
    assert 0.5 * params_mb < result["cached_weights_mb"] < 1.5 * params_mb  # one folded copy of the 1x1 weights


def test_isolated_worker_times_models_interleaved():
    result = _worker({"what": "latency", "models": ["unet_4", "onenet_ed_4"], "onnxruntime": ["onenet_ed_4"]})
    names = {"unet_4", "onenet_ed_4", "onenet_ed_4@onnxruntime"}
    assert set(result) == names | {name + "@rounds" for name in names}
    for name in names:  # the median of its 2 rounds, which are kept
        assert len(result[name + "@rounds"]) == 2 and all(value > 0 for value in result[name + "@rounds"])
        assert result[name] == pytest.approx(statistics.median(result[name + "@rounds"]))


def test_pass_servers_time_onnxruntime_and_eager_in_turn(monkeypatch):
    pytest.importorskip("onnxruntime")
    from monai_onenet.benchmark import __main__ as bench

    monkeypatch.setattr(bench, "PAIR_PAUSE_S", 0.0)
    args = bench._parse_args(["--quick", "--threads", "1"])
    # oneDNN's verbose mode writes to the workers' stdout from C: the replies must stay apart from it
    monkeypatch.setenv("ONEDNN_VERBOSE", "1")
    result = bench._onnxruntime_against_eager("onenet_ed_4", args, "cpu")  # two resident worker processes
    assert len(result["onnxruntime_pair_ratios"]) == bench.QUICK_ONNX_PAIRS
    assert result["latency_onnxruntime_ms"] > 0 and result["latency_eager_alone_ms"] > 0
    assert result["onnxruntime_timing"] == "each runtime in a process of its own"


def test_pass_server_reports_a_worker_that_dies_between_passes():
    from monai_onenet.benchmark import __main__ as bench

    args = bench._parse_args(["--quick", "--threads", "1"])
    with bench._PassServer("onenet_ed_4", False, args, "cpu") as server:
        assert server.timed_pass() > 0
        server._process.kill()
        server._process.wait()
        with pytest.raises(RuntimeError, match="timing process stopped"):
            server.timed_pass()


def test_pass_server_reports_a_worker_that_fails():
    from monai_onenet.benchmark import __main__ as bench

    args = bench._parse_args(["--quick", "--threads", "1"])
    with pytest.raises(RuntimeError, match="(?s)timing process stopped.*resnet"):
        bench._PassServer("resnet", False, args, "cpu")


def test_timed_pairs_alternate_which_pass_goes_first(monkeypatch):
    from monai_onenet.benchmark import __main__ as bench

    monkeypatch.setattr(bench, "PAIR_PAUSE_S", 0.0)
    calls = []
    passes = {name: (lambda name=name: calls.append(name) or 1.0) for name in ("a", "b")}
    times = bench._timed_pairs(passes, 4)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert times == {"a": [1.0] * 4, "b": [1.0] * 4}


def test_live_peak_memory_sees_an_allocation():
    size_mb = 64

    def allocate() -> None:
        block = torch.ones(size_mb * 2**20 // 4)
        assert block.sum() > 0

    assert peak_memory_mb(allocate, torch.device("cpu")) == pytest.approx(size_mb, rel=0.05)


def test_unknown_model_is_named():
    with pytest.raises(SystemExit, match="unknown model"):
        main(["--quick", "--models", "resnet"])


def test_sequence_conv_command_times_three_agreeing_forms(tmp_path):
    path = tmp_path / "sp.json"
    result = main(["sequence_conv", "--quick", "--rounds", "1", "--threads", "1", "--json", str(path)])
    # One row per spatial conv of OneNet_ed,4: 4 encoder and 4 decoder levels.
    assert len(result["rows"]) == 8 and json.loads(path.read_text())["total_ms"] == result["total_ms"]
    assert all(row["max_abs_diff"] <= 1e-5 for row in result["rows"])
    assert all(row[f"{form}_ms"] > 0 for row in result["rows"] for form in ("reference", "shifted_add", "block"))


def test_peers_are_in_the_table_benchmark():
    names = [m.name for m in benchmark_models(quick=True)]
    assert {"unext", "basicunet", "basicunet_3d"} <= set(names)


def test_train_step_command_reports_interleaved_ratios_to_the_first_model(tmp_path):
    json_path = tmp_path / "steps.json"
    argv = ["train_step", "--models", "unext", "onenet_edge_lite_4", "--size", "32", "--batch_size", "2"]
    result = main(argv + ["--steps", "1", "--rounds", "3", "--warmup", "1", "--json", str(json_path)])
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(result))
    assert result["baseline"] == "unext" and result["rounds"] == 3
    baseline, lite = result["rows"]
    assert (baseline["ratio_vs_baseline"], baseline["ratio_min"], baseline["ratio_max"]) == (1.0, 1.0, 1.0)
    assert lite["model"] == "onenet_edge_lite_4" and lite["step_ms"] > 0
    ratios = sorted(a / b for a, b in zip(lite["round_ms"], baseline["round_ms"]))
    assert lite["ratio_vs_baseline"] == pytest.approx(ratios[1])  # median of 3 rounds, lite over the baseline
    assert (lite["ratio_min"], lite["ratio_max"]) == pytest.approx((ratios[0], ratios[-1]))


def test_train_step_trains_every_head_of_a_deep_supervision_model(monkeypatch):
    from monai_onenet.benchmark import train_step

    built = []
    entry = train_step.ACCURACY_MODELS["onenet_edge_4_ds"]
    spy = type(entry)(entry.family, lambda i, o: built.append(entry.build(i, o)) or built[-1])
    monkeypatch.setitem(train_step.ACCURACY_MODELS, "onenet_edge_4_ds", spy)
    batch, labels = torch.randn(2, 1, 32, 32), torch.randint(0, 2, (2, 1, 32, 32))
    train_step.training_step_runner("onenet_edge_4_ds", batch, labels, torch.device("cpu"))()
    assert built and all(head.weight.grad is not None for head in built[0].auxiliary_heads)


@pytest.mark.parametrize(
    "argv, message", [(["--models", "resnet"], "unknown model"), (["--size", "40"], "multiple of 32")]
)
def test_train_step_command_names_bad_arguments(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(["train_step", *argv])


@pytest.mark.parametrize("cold", [False, True])
def test_latency_rounds_interleave_models_and_time_each_pass_after_its_own(cold):
    from monai_onenet.benchmark.measure import COLD_SUFFIX, measure_latencies, measure_latency_rounds

    calls = []
    runners = {name: (lambda n=name: calls.append(n)) for name in ("a", "b")}
    times = measure_latencies(
        runners, torch.device("cpu"), warmup=1, rounds=3, cold_suffix=COLD_SUFFIX if cold else None
    )
    per_round = ["a", "a", "b", "b"] if cold else ["a", "b"]
    assert calls == ["a", "b"] + per_round * 3
    assert set(times) == ({"a", "b", "a@cold", "b@cold"} if cold else {"a", "b"})
    assert all(value >= 0 for value in times.values())
    rounds = measure_latency_rounds(runners, torch.device("cpu"), warmup=0, rounds=3)
    assert {name: len(values) for name, values in rounds.items()} == {"a": 3, "b": 3}


def test_a_model_alone_in_its_input_group_gets_no_cold_latency():
    # U-Net_4 and the 3D baseline, each alone: the first pass of a round would follow its own, not another model's
    rows = {
        row["model"]: row for row in main(["--quick", "--in-process", "--models", "unet_4", "--threads", "1"])["rows"]
    }
    assert set(rows) == {"unet_4", "basicunet_3d"}
    for row in rows.values():
        assert row["latency_ms"] > 0
        assert row["latency_cold_ms"] is None and row["latency_cold_ratio_vs_unet4"] is None
