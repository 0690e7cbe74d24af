"""The CLI makes OpenMP threads sleep at barriers (OMP_WAIT_POLICY=PASSIVE) unless the user set the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = """
import json, os
import ovtools.cli
print("STATE" + json.dumps(os.environ.get("OMP_WAIT_POLICY")))
"""


def _policy_after_importing_the_cli(**env: str):
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**base, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.split("STATE")[-1])


def test_passive_by_default_and_the_users_value_wins():
    assert _policy_after_importing_the_cli() == "PASSIVE"
    assert _policy_after_importing_the_cli(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert _policy_after_importing_the_cli(OMP_WAIT_POLICY="") == "PASSIVE"  # empty = unset (libgomp rejects "")
