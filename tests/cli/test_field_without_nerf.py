"""Without nerfstudio, ``ovtools field`` (and ``eval`` of a run folder) stop with one line naming the extra; the
rest of the CLI keeps working.  nerfstudio's absence is simulated where it is installed."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from ovtools.cli import app


@pytest.fixture
def no_nerfstudio(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "nerfstudio" else
                        real(name, *a, **k))


@pytest.mark.parametrize("args", [["field", "train", "{tmp}", "--out", "{tmp}/run"],
                                  ["field", "query", "{tmp}", "--query", "a mug"],
                                  ["field", "export", "{tmp}", "--labels", "mug", "-o", "{tmp}/o.ply"],
                                  ["eval", "{tmp}"]])
def test_one_line_naming_the_extra(no_nerfstudio, tmp_path, args):
    (tmp_path / "config.yml").write_text("x: 1\n")  # looks like a run folder to `ovtools eval`
    res = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == ['Error: NeRF feature fields need nerfstudio, which is not installed: pip install "ovtools[nerf]"']


def test_other_commands_unaffected(no_nerfstudio):
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0 and "field" in res.output and "segment3d" in res.output
    assert CliRunner().invoke(app, ["field", "--help"]).exit_code == 0
