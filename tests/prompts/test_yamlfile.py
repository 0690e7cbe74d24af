"""read_yaml: libyaml's parser for speed, the same values as yaml.safe_load, the pure-Python parser's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ovtools.errors import ConfigError
from ovtools.prompts.yamlfile import read_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*ROOT.glob("pipelines/*.yaml"), *ROOT.glob("configs/**/*.yaml"), *ROOT.glob("ovtools/**/*.yaml")])


def test_every_shipped_yaml_reads_as_safe_load_reads_it():
    assert len(SHIPPED) >= 10
    for path in SHIPPED:
        assert repr(read_yaml(path)) == repr(yaml.safe_load(path.read_text(encoding="utf-8"))), path


@pytest.mark.parametrize("text, where, problem", [
    ("a: [1, 2", "line 1, column 9", "expected ',' or ']', but got '<stream end>'"),
    ("a: b: c", "line 1, column 5", "mapping values are not allowed here"),
])
def test_errors_name_the_pure_python_parsers_position(tmp_path, text, where, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_yaml(path)
    assert str(e.value) == f"{path}: {where}: invalid YAML: {problem}"


def test_yaml_1_1_scalars_as_before(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("a: yes\nb: 1e3\nc: 0o17\nd: 2026-01-02\ne: ~\nf: 1_000\n")
    assert read_yaml(path) == yaml.safe_load(path.read_text())
