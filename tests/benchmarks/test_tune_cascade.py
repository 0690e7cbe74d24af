"""benchmarks/tune_cascade.py reuses the scenes of its work folder: only when they are the ones asked for."""

import os
import subprocess
import sys
from pathlib import Path

from ovtools.cli.inprocess import run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_work_folder_with_another_scene_count_is_refused(tmp_path):
    """A work folder generated with --scenes 2 is not silently reused by a --scenes 3 run (the figures would be
    of 2 scenes): exit 2 naming the folder, both counts, before any model loads."""
    run_cli(["datagen", tmp_path / "scenes-1000-192", "--kind", "scenes", "--n", 2, "--seed", 1000,
             "--min-objects", 3, "--max-objects", 6, "--image-size", 192])
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tune_cascade.py"), str(tmp_path), "--scenes", "3"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{tmp_path / 'scenes-1000-192'} holds 2 scenes, --scenes 3 asked for" in r.stderr
