"""`landscape bench` (surface mode) runs and reports consistent fields; no timing is asserted."""
import json

from conftest import run_cli


def test_bench_surface_reports_ratios(tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--grid", "3", "--repeat", "1", "--samples", "256", "--rtol", "0", "--json", str(out),
                env={"LANDSCAPE_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert json.loads(r.stdout.strip().splitlines()[-1]) == result
    for key in ("points_per_s", "samples_per_s", "overhead_ratio", "fraction_of_peak", "batch_size", "cpu", "cores",
                "options"):
        assert key in result, key
    assert abs(result["samples_per_s"] - result["points_per_s"] * result["samples"]) <= 1e-9 * result["samples_per_s"]
    assert result["per_point_s"] >= 0 and result["overhead_ratio"] > 0
    assert "rtol_work_ratio" not in result  # --rtol 0 skipped it
