"""bench/gpu_check.py: the GPU check's code path, run at tiny sizes on the CPU (``--cpu-smoke``)."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
CHECKS = [
    "agreement bf16", "agreement fp16", "inference fp32", "inference bf16", "inference bf16 + channels_last_3d",
    "inference bf16 + torch.compile", "train, 0 loader workers", "train, 2 loader workers", "DDP step",
]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_smoke_prints_every_row(tmp_path):
    out = tmp_path / "nested" / "gpu_check.json"
    start = time.perf_counter()
    # A generous budget: on a loaded shared CPU the run takes longer than its usual minute, and
    # a row skipped for time would fail the check for the wrong reason.
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--out", str(out), "--budget-s", "900"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, f"exit {proc.returncode} after {seconds:.0f} s\n{proc.stdout}\n{proc.stderr[-4000:]}"
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[0].split("|")[1].strip() == "check"
    assert [line.split("|")[1].strip() for line in table[1:]] == CHECKS
    assert not any("ERROR" in line or "skipped" in line for line in table), proc.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "cpu-smoke" and [r["check"] for r in report["rows"]] == CHECKS
    for row in report["rows"]:
        assert row["status"] == "ok" and row["value"] > 0, row
        assert row["peak_mib"] is None  # no GPU memory on the CPU
    agreement = {r["check"]: r for r in report["rows"] if r["check"].startswith("agreement")}
    for row in agreement.values():
        assert 0 < row["value"] <= 1 and 0 <= row["max_abs_diff"] < 1


def test_a_failing_row_keeps_its_error_and_the_table_goes_on():
    gpu_check = _gpu_check()
    table = gpu_check.Table(gpu_check.CPU_SMOKE)
    failed = table.run("broken", "setting", lambda: {"value": 1 / 0})
    ran = table.run("fine", "setting", lambda: {"value": 2.5, "unit": "windows/s", "note": "ok"})
    assert failed["status"] == "error" and "ZeroDivisionError: division by zero" in failed["note"]
    assert ran["status"] == "ok" and ran["value"] == 2.5
    late = gpu_check.Table(gpu_check.CPU_SMOKE)
    late.start -= gpu_check.CPU_SMOKE.budget_s + 1
    skipped = late.run("late", "setting", lambda: pytest.fail("a row past the budget must not run"))
    assert skipped["status"] == "skipped"
    lines = (table.format() + "\n" + late.format().splitlines()[-1]).splitlines()
    assert "| ERROR " in lines[2] and "ZeroDivisionError" in lines[2]
    assert "| 2.5 " in lines[3] and "| skipped " in lines[4]
    assert len({len(line) for line in lines[:4]}) == 1  # one table: aligned columns


def test_cpu_engine_quick_compares_each_engine_with_eager(tmp_path):
    """bench/bench_cpu_engine.py --quick: a row per engine and batch; what is not installed says so."""
    out = tmp_path / "engine.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_cpu_engine.py"), "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {(r["batch"], r["engine"]) for r in rows} == {(b, e) for b in (1, 2)
                                                        for e in ("eager", "channels_last", "onnxruntime", "openvino")}
    for row in rows:
        if row["engine"] in ("eager", "channels_last"):
            assert row["value"] > 0 and row["argmax_agreement"] == 1.0, row
        else:  # not installed here, failed to export, or measured
            assert row["note"].startswith(("skipped", "failed")) or row["argmax_agreement"] >= 0.0, row
    assert "| hs_i3d_tiny | 1 | eager |" in proc.stdout


@pytest.mark.slow
def test_stride_quick_scores_each_plan_from_one_pass_and_picks_a_stride(tmp_path):
    """bench/bench_stride.py --quick: a tiny demo seed trained, every plan scored and tuned, the policy applied.

    A coarser stride's windows are taken from the finest stride's pass; the bench checks them against
    ``score_videos`` run at that stride, which must agree to float rounding.
    """
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_stride.py"), "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "stride.json").read_text())
    plans = [(r["window"], r["stride"]) for r in report["table"]]
    assert plans == [(32, 1), (32, 4), (32, 8), (64, 16), (64, 32)]
    for row in report["table"]:
        assert len(row["f1_per_seed"]) == 1 and 0.0 <= row["f1_mean"] <= 1.0
        assert row["s_per_hour_one_checkpoint"] > 0
    reference = report["table"][0]
    expected = max(r["stride"] for r in report["table"] if r["window"] == 32 and r["f1_mean"] >= reference["f1_mean"] - 0.01)
    assert report["policy_stride"] == expected
    checks = report["per_seed"][0]["subset_check_max_abs_diff"]
    assert set(checks) == {"32", "64"} and max(checks.values()) < 1e-5
    assert f"policy: stride {expected}" in proc.stdout
    # a second run reuses the seed's scores instead of scoring again
    again = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_stride.py"), "--quick", "--out", str(tmp_path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "checkpoints in" not in again.stdout
    assert set(report["windows_per_s"]) == {"32", "64"} and min(report["windows_per_s"].values()) > 0


def test_stride_policy_is_the_largest_stride_within_the_tolerance():
    spec = importlib.util.spec_from_file_location("bench_stride", ROOT / "bench" / "bench_stride.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    per_seed = [{"rows": {f"{w}/{s}": {"f1": f} for (w, s), f in zip(plans, f1s)}}
                for plans, f1s in [([(32, 1), (32, 8), (32, 16), (256, 64)], [0.70, 0.695, 0.60, 0.71]),
                                   ([(32, 1), (32, 8), (32, 16), (256, 64)], [0.72, 0.70, 0.70, 0.71])]]
    table = bench.summarise(per_seed, [(32, 1), (32, 8), (32, 16), (256, 64)], {32: 10.0, 256: 2.0})
    assert [round(r["delta_vs_stride1"], 4) for r in table] == [0.0, -0.0125, -0.06, 0.0]
    assert bench.policy(table) == 1  # stride 8 loses 0.0125 on average; a long window is no 32-frame stride
    table[1]["delta_vs_stride1"] = -0.009
    assert bench.policy(table) == 8
    assert table[3]["s_per_hour_one_checkpoint"] == pytest.approx(25 * 3600 / 64 / 2.0)


def test_hour_quick_projects_both_scorings(tmp_path):
    """bench/bench_hour.py --quick: the original's scoring and signspot's default (torch, OpenVINO), timed and projected."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_hour.py"), "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "hour.json").read_text())["rows"]
    original, default, openvino = rows
    from signspot.datasets.windows import window_starts
    from signspot.spot import DEFAULT_STRIDE

    assert (original["stride"], default["stride"]) == (1, DEFAULT_STRIDE)
    assert original["windows_timed"] == 16  # two whole batches of the original's windows
    assert default["windows_timed"] == len(window_starts(500, 32, DEFAULT_STRIDE))  # 20 s at 25 fps
    assert openvino["windows_timed"] == default["windows_timed"] and "openvino" in openvino["scoring"]
    for row in rows:
        assert row["seconds"] > 0 and row["hour_one_checkpoint_h"] > 0
    assert "| signspot's default" in proc.stdout
