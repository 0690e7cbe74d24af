"""Settings declared once: validation derived from type hints and declared ranges (``ovtools.config``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pytest

from ovtools.config import Config, config_defaults, configure, setting


@dataclass(frozen=True)
class Toy(Config):
    """A toy config."""

    mode: Literal["a", "b"] = setting("a", "Which mode.")
    threshold: float = setting(0.5, "Smallest score.", minimum=0.0, maximum=1.0, flag="--threshold")
    iou: float | None = setting(0.5, "Overlap.", minimum=0.0, maximum=1.0, exclusive_minimum=True)
    steps: int = setting(3, "Steps.", minimum=0)
    sizes: tuple = setting((1, 2), "Sizes.", cli=False)
    extra: Any = setting(None, "Anything.")

    def check(self) -> None:
        if self.mode == "b" and self.steps == 0:
            raise ValueError("mode 'b' needs steps > 0")


@pytest.mark.parametrize("kwargs,error,message", [
    ({"mode": "c"}, ValueError, "mode must be one of 'a', 'b', got 'c'"),
    ({"mode": 1}, TypeError, "mode must be one of"),
    ({"threshold": 1.5}, ValueError, "threshold must be <= 1.0"),
    ({"threshold": float("nan")}, TypeError, "threshold must be a number"),
    ({"threshold": True}, TypeError, "threshold must be a number"),  # bools are not numbers here
    ({"iou": 0.0}, ValueError, "iou must be > 0.0"),
    ({"iou": "x"}, TypeError, "iou must be a number or null"),
    ({"steps": 1.5}, TypeError, "steps must be an integer"),
    ({"steps": -1}, ValueError, "steps must be >= 0"),
    ({"sizes": 3}, TypeError, "sizes must be a list"),
    ({"mode": "b", "steps": 0}, ValueError, "mode 'b' needs steps > 0"),
])
def test_values_are_checked_against_the_declaration(kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        Toy(**kwargs)


def test_defaults_lists_overrides_and_generated_docs():
    t = Toy(sizes=[3, 4], iou=None, extra={"any": "thing"})
    assert t.sizes == (3, 4) and t.iou is None  # YAML lists become tuples; null where declared
    assert config_defaults(Toy) == {"mode": "a", "threshold": 0.5, "iou": 0.5, "steps": 3, "sizes": (1, 2),
                                    "extra": None}
    assert configure(Toy, t, mode="b").mode == "b" and configure(Toy).mode == "a"
    with pytest.raises(ValueError):
        configure(Toy, t, threshold=2.0)
    assert "Attributes:" in Toy.__doc__ and "threshold: Smallest score." in Toy.__doc__


def test_every_head_config_and_the_common_settings_declare_help_for_every_field():
    import dataclasses

    from ovtools.engine import EngineConfig
    from ovtools.heads import HEADS, head_spec
    from ovtools.pipelines import CommonConfig

    for cls in [head_spec(n).config for n in HEADS.names()] + [CommonConfig, EngineConfig]:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
        cls()  # the defaults are valid
