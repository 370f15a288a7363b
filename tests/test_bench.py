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
