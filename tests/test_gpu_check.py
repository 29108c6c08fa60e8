"""benchmarks/gpu_check.py stays runnable: its tiny setting on the CPU, end to end."""

import json
import subprocess
import sys


def test_gpu_check_runs_every_stage_on_cpu(repo, tmp_path):
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [
            sys.executable,
            str(repo / "benchmarks/gpu_check.py"),
            "--tiny",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=repo,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(out.read_text())
    stages = [row["stage"] for row in rows]
    assert stages == [
        "teacher epoch (width 0.25)",
        "precompute IG (4 steps)",
        "student epoch drop 13 (KD_IG_AT)",
        "2 students at once, drop 13",
    ]
    assert all(row["images/s"] > 0 and row["seconds"] > 0 for row in rows)
    assert rows[-1]["jobs"] == 2 and rows[-1]["images"] == 2 * rows[2]["images"]
    assert "| stage" in result.stdout and "throughput only" in result.stdout  # the printed table
