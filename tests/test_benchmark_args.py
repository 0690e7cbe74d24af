"""Benchmark scripts: a bad flag is one argparse line and exit 2, not a traceback from deep in a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("script", "args", "message"), [
    ("bench_encoder.py", ["--device", "nonsense"], "--device: device='nonsense' is not a torch device"),
    ("bench_peers.py", ["--rounds", "0"], "--rounds must be >= 1, got 0"),
    ("bench_proposals.py", ["--sources", "windows"], "--sources: ['windows'] take no workers option"),
])
def test_bad_benchmark_flags_exit_2_with_one_line(script, args, message):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr and "Traceback" not in r.stderr
