"""Settings declared once: config dataclasses whose type hints are their validation.

Every head's settings (and the settings common to every pipeline) are a frozen
dataclass deriving from :class:`Config`.  A field is declared with
:func:`setting`: its default, a one-line help text, and optionally a range and a
command-line flag.  From that one declaration ovtools derives

* validation on construction (:meth:`Config.__post_init__`): the value must match
  the field's type hint — ``Literal[...]`` choices, ``int``, ``float`` (not NaN,
  not ``bool``), ``bool``, ``str``, ``X | None``, ``Mapping``, ``tuple`` — and the
  declared range; errors name the field and the value;
* preset keys (a preset may set every field; :func:`config_defaults`);
* command-line options with their help texts (:mod:`ovtools.cli.derive`).

Cross-field rules go in a subclass's :meth:`Config.check`.

Example::

    @dataclass(frozen=True)
    class MyConfig(Config):
        scoring: Literal["crop", "dense"] = setting("crop", "How regions are scored.")
        threshold: float = setting(0.5, "Smallest confidence reported.", minimum=0.0, maximum=1.0)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

_MISSING = dataclasses.MISSING


def setting(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING,
            minimum: float | None = None, maximum: float | None = None, exclusive_minimum: bool = False,
            flag: str | None = None, short: str | None = None, cli: bool = True) -> Any:
    """A config field with its help text, range and command-line spelling.

    Args:
        default: the built-in default (use ``default_factory`` for mutable values).
        help: one line, shown by ``--help`` and written in the preset reference.
        default_factory: zero-argument callable making the default (mappings, lists).
        minimum / maximum: inclusive bounds for numbers (``exclusive_minimum``: ``> minimum``).
        flag: the command-line option (default ``--field-name``).
        short: a one-letter alias such as ``"-k"``.
        cli: ``False`` keeps the field out of the command line (preset and Python only).

    Returns:
        A :func:`dataclasses.field`.
    """
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "exclusive_minimum": exclusive_minimum,
            "flag": flag, "short": short, "cli": cli}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_hints(cls) -> dict[str, Any]:
    """Resolved type hints of a config dataclass (``from __future__ import annotations`` safe)."""
    return typing.get_type_hints(cls)


def strip_optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; anything else → ``(hint, False)``."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        if len(args) == 1:
            return args[0], nullable
        return Union[tuple(args)], nullable  # type: ignore[return-value]
    return hint, False


def literal_choices(hint: Any) -> tuple | None:
    """The choices of a ``Literal[...]`` hint (after removing ``None``), else ``None``."""
    base, _ = strip_optional(hint)
    return typing.get_args(base) if typing.get_origin(base) is Literal else None


def _describe(hint: Any) -> str:
    base, nullable = strip_optional(hint)
    choices = literal_choices(base)
    if choices is not None:
        text = "one of " + ", ".join(repr(c) for c in choices)
    else:
        text = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(base)
        if text is None:
            origin = typing.get_origin(base) or base
            text = {tuple: "a list", Mapping: "a mapping", dict: "a mapping"}.get(origin, str(base))
    return text + (" or null" if nullable else "")


def _matches(value: Any, hint: Any) -> bool:
    base, nullable = strip_optional(hint)
    if base is Any:
        return True
    if value is None:
        return nullable
    choices = literal_choices(base)
    if choices is not None:
        return value in choices and not isinstance(value, bool)
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base in (bool, str):
        return isinstance(value, base)
    origin = typing.get_origin(base) or base
    if origin in (Mapping, dict):
        return isinstance(value, Mapping)
    if origin in (tuple, list):
        return isinstance(value, (tuple, list))
    if typing.get_origin(base) in (Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(base))
    return isinstance(value, origin) if isinstance(origin, type) else True


def check_value(name: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> None:
    """Check one value against its field's type hint and declared range.

    Raises:
        TypeError: the value has the wrong type (message names the field, what it must be and the value).
        ValueError: a Literal value outside its choices, or a number outside the declared range.
    """
    if not _matches(value, hint):
        kind = ValueError if literal_choices(hint) is not None and isinstance(value, str) else TypeError
        raise kind(f"{name} must be {_describe(hint)}, got {value!r}")
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and (value <= lo if meta.get("exclusive_minimum") else value < lo):
        op = ">" if meta.get("exclusive_minimum") else ">="
        raise ValueError(f"{name} must be {op} {lo}" + (f" and <= {hi}" if hi is not None else "") + f", got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}" + (f" and >= {lo}" if lo is not None else "") + f", got {value!r}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every settings dataclass: validates each field against its type hint on construction.

    Subclasses are frozen dataclasses whose fields come from :func:`setting`; they may
    override :meth:`check` for rules that involve several fields.

    Raises:
        TypeError / ValueError: on construction, naming the field and the bad value.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Append an ``Attributes:`` section built from the fields' help texts to the subclass's docstring."""
        super().__init_subclass__(**kwargs)
        lines = [f"        {name}: {value.metadata['help']}" for name, value in vars(cls).items()
                 if isinstance(value, dataclasses.Field) and value.metadata.get("help")]
        if lines and cls.__doc__ and "Attributes:" not in cls.__doc__:
            cls.__doc__ = cls.__doc__.rstrip() + "\n\n    Attributes:\n" + "\n".join(lines) + "\n"

    def __post_init__(self) -> None:
        hints = field_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # YAML and JSON give lists where the config wants tuples
                object.__setattr__(self, f.name, tuple(value))
                value = tuple(value)
            check_value(f.name, value, hints[f.name], f.metadata)
        self.check()

    def check(self) -> None:
        """Cross-field rules (subclasses); raise ``ValueError`` naming the fields."""


def configure(config_cls, config: Config | None = None, **overrides: Any) -> Any:
    """``config`` (default: ``config_cls()``) with ``overrides`` replacing its fields, validated.

    Raises:
        TypeError: an unknown field, or a value of the wrong type.
        ValueError: an unknown choice or an out-of-range value.
    """
    config = config if config is not None else config_cls()
    return dataclasses.replace(config, **overrides) if overrides else config


def config_defaults(config_cls) -> dict[str, Any]:
    """Every field of a config dataclass with its default (``None`` where it has none)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if f.default is not _MISSING:
            out[f.name] = f.default
        elif f.default_factory is not _MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
        else:
            out[f.name] = None
    return out


def config_fields(config_cls) -> list[tuple[dataclasses.Field, Any]]:
    """``(field, resolved type hint)`` for every field of a config dataclass, in declaration order."""
    hints = field_hints(config_cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(config_cls)]
