"""Command-line options derived from config dataclasses: each setting is declared once.

A command is assembled from

* its inputs argument and its own outputs (``--coco-output``, ``--summary``, ...),
* the fields of its head's config dataclass (:mod:`ovtools.config`): ``--scoring``,
  ``--threshold``, ... with the field's help text, choices and range,
* the shared options: the fields of :class:`~ovtools.pipelines.presets.CommonConfig`
  (``--model``, ``--pretrained``, ``--device``, ``--precision``, ``--labels``, ...) and
  the CLI's own (``--preset``, ``--output``, ``--save-vis``, ``--recursive``, ``--quiet``).

Every derived option defaults to ``None`` (= "the preset's value"); its help text ends
with the value the command's default preset (or the config) gives it.  The command body
receives an :class:`Invocation` holding the pipeline overrides of the options the user
actually gave.
"""

from __future__ import annotations

import copy
import enum
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..config import config_defaults, config_fields, literal_choices, strip_optional
from ..pipelines.presets import CommonConfig, normalize_pretrained, preset_path
from ..prompts.yamlfile import read_yaml

#: The :class:`CommonConfig` fields every model-running command offers (``task`` is preset-only).
COMMON_OPTIONS = ("model", "pretrained", "device", "precision", "labels", "classes", "templates", "max_side",
                  "batch_size", "cache_dir", "use_cache")

#: Shared options that are not pipeline settings, declared once for every command.
CLI_OPTIONS: dict[str, tuple[Any, Any]] = {
    "preset": (Optional[str], typer.Option(
        "--preset", help="Pipeline preset: a name from pipelines/ (`ovtools models --presets`) or a YAML file; "
        "other options override its values.", show_default=False)),
    "output": (Optional[Path], typer.Option(
        "--output", "-o", help="Write results as JSON to this file (schema: ovtools.io.writers).",
        show_default=False, dir_okay=False)),
    "save_vis": (Optional[Path], typer.Option(
        "--save-vis", help="Save annotated PNGs at the original image size: a .png file for one image, or a "
        "folder for several (one <image stem>.<command>.png each, so commands never replace each other's).",
        show_default=False)),
    "vis_max_side": (Optional[int], typer.Option(
        "--vis-max-side", min=16, help="Draw --save-vis pictures at most this many pixels on the longer side. "
        "Default: the original size, so a picture lines up with the boxes in the JSON.", show_default=False)),
    "recursive": (bool, typer.Option("--recursive", "-r", help="Also take images from sub-folders of folder "
                                     "arguments.")),
    "quiet": (bool, typer.Option("--quiet", "-q", help="Do not print the results (table or JSON) on stdout, nor "
                                 "stage and progress lines on stderr (failures are still reported).")),
}
_CLI_DEFAULTS = {"recursive": False, "quiet": False}
#: Setting name → command-line flag of every derived option (the same for every command).
FLAGS: dict[str, str] = {}


def _flag(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


#: What ``--x null`` parses to for a nullable number setting: the setting is set to ``None`` (an absent
#: option, also ``None`` when parsed, keeps the preset's value).
NULL = type("Null", (), {"__repr__": lambda self: "null"})()


def _bounds(low: float | None, high: float | None, exclusive_low: bool) -> str:
    """``">= 1"``, ``"> 0.0 and <= 1.0"``, ``"<= 5"``: a setting's range in words ("" for none)."""
    parts = ([f"{'>' if exclusive_low else '>='} {low}"] if low is not None else []) + \
        ([f"<= {high}"] if high is not None else [])
    return " and ".join(parts)


def nullable_number(base: type, low: float | None = None, high: float | None = None,
                    exclusive_low: bool = False) -> Callable[[str], Any]:
    """A typer parser for an ``int | None`` / ``float | None`` setting: ``null`` / ``none`` (any case) → :data:`NULL`,
    else the number within ``[low, high]`` (``(low, high]`` with ``exclusive_low``); ``typer.BadParameter``
    (exit 2) otherwise."""
    kind = "an integer" if base is int else "a number"

    def parse(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        if text.strip().lower() in ("null", "none"):
            return NULL
        try:
            value = base(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not {kind} or null") from None
        if low is not None and (value <= low if exclusive_low else value < low) or high is not None and value > high:
            raise typer.BadParameter(f"{text} is out of range: must be {_bounds(low, high, exclusive_low)} (or null)")
        return value
    return parse


def _choice_enum(name: str, choices: Iterable[str]) -> type[enum.Enum]:
    return enum.Enum(f"{name.title().replace('_', '')}Choice", {str(c): str(c) for c in choices}, type=str)


@functools.lru_cache(maxsize=None)
def preset_values(preset: str | None) -> Mapping[str, Any]:
    """The mapping of a shipped preset (``{}`` for ``None`` or an unreadable one), for help texts."""
    if preset is None:
        return {}
    try:
        data = read_yaml(preset_path(preset))
    except Exception:  # help texts must never fail
        return {}
    return data if isinstance(data, dict) else {}


def _default_text(name: str, default: Any, preset: str | None) -> str:
    values = preset_values(preset)
    if name in values:
        return f"Default: {_show(values[name])} (preset {preset})."
    return f"Default: {_show(default)}."


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def config_parameters(config_cls, preset: str | None, taken: set[str] | None = None,
                      only: Iterable[str] | None = None) -> list[inspect.Parameter]:
    """One typer option per command-line field of ``config_cls`` (fields with ``cli=False`` and
    fields whose name or flag is already in ``taken`` are skipped; ``taken`` is updated; ``only``: just
    these fields).

    Scalars only: ``Literal`` choices become a choice option, ``bool`` a ``--x/--no-x`` switch,
    ``int``/``float``/``str`` plain options with the declared range; mappings and tuples stay
    preset keys.
    """
    taken = taken if taken is not None else set()
    defaults = config_defaults(config_cls)
    params = []
    for f, hint in config_fields(config_cls):
        flag = _flag(f)
        if not f.metadata.get("cli", True) or f.name in taken or flag in taken or (only is not None
                                                                                    and f.name not in only):
            continue
        base, nullable = strip_optional(hint)
        choices = literal_choices(hint)
        kwargs: dict[str, Any] = {"show_default": False}
        note = ""
        decls = [flag] + ([f.metadata["short"]] if f.metadata.get("short") else [])
        if choices is not None:
            typ: Any = _choice_enum(f.name, choices)
        elif base is bool:
            typ = bool
            decls = [f"{flag}/--no-{flag[2:]}"] if f.name != "use_cache" else ["--use-cache/--no-cache"]
            decls += [f.metadata["short"]] if f.metadata.get("short") else []
        elif base in (int, float) and nullable:  # `--cascade-side null` sets None; the parser checks the range
            typ = base
            bounds = (f.metadata.get("minimum"), f.metadata.get("maximum"), bool(f.metadata.get("exclusive_minimum")))
            kwargs.update(parser=nullable_number(base, *bounds), metavar=f"<{base.__name__}|null>")
            note = f" Must be {_bounds(*bounds)}." if _bounds(*bounds) else ""
        elif base in (int, float, str):
            typ = base
            if f.metadata.get("minimum") is not None and not f.metadata.get("exclusive_minimum"):
                kwargs["min"] = f.metadata["minimum"]  # (an exclusive bound is enforced by the config, exit 2, and
            elif f.metadata.get("minimum") is not None:  # said in the help: typer's ranges are inclusive)
                note = f" Must be > {f.metadata['minimum']}."
            if f.metadata.get("maximum") is not None:
                kwargs["max"] = f.metadata["maximum"]
        elif f.name == "cache_dir":
            typ = Path
            kwargs["file_okay"] = False
        elif f.name == "labels":
            typ = str
        else:
            continue  # mappings, tuples: preset keys only
        help_text = f"{f.metadata.get('help', '')}{note} {_default_text(f.name, defaults[f.name], preset)}".strip()
        option = typer.Option(*decls, help=help_text, **kwargs)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Optional[typ], option]))
        FLAGS[f.name] = flag
        taken.update({f.name, flag})
    return params


def setting_option(config_cls, name: str, preset: str | None = None) -> Any:
    """The ``Annotated`` typer option of one config field, for a command written as a plain typer function."""
    return config_parameters(config_cls, preset, only={name})[0].annotation


def argument(name: str, typ: Any, help: str) -> inspect.Parameter:
    """A required positional argument."""
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                             annotation=Annotated[typ, typer.Argument(help=help, show_default=False)])


def option(name: str, typ: Any, *decls: str, help: str, default: Any = None, **kw: Any) -> inspect.Parameter:
    """A command's own option (``Optional[typ]`` unless a non-None default is given)."""
    annotation = typ if default is not None else Optional[typ]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, typer.Option(*decls, help=help, **kw)])


def choice_option(name: str, choices: Iterable[str], *decls: str, help: str, default: str | None = None
                  ) -> inspect.Parameter:
    """A command's own option taking one of ``choices`` (a library's constant, listed in ``--help``)."""
    return option(name, _choice_enum(name, choices), *decls, help=help, default=default)


def cli_parameters(names: Iterable[str], preset: str | None = None) -> list[inspect.Parameter]:
    """Typer options for the named shared CLI options (:data:`CLI_OPTIONS`); ``--preset``'s help names the
    command's default ``preset``."""
    out = []
    for name in names:
        typ, option = CLI_OPTIONS[name]
        if name == "preset" and preset is not None:
            option = copy.copy(option)
            option.help = f"{option.help} Default: {preset}."
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_CLI_DEFAULTS.get(name),
                                     annotation=Annotated[typ, option]))
    return out


@dataclass
class Invocation:
    """What a command body receives.

    Attributes:
        values: every parameter by name, as typer parsed it (choices as plain strings).
        settings: pipeline overrides: the config and common fields the user actually gave.
        flags: setting name → its command-line flag (``score_threshold`` → ``--threshold``), for messages.
    """

    values: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def build_command(app: typer.Typer, name: str, body: Callable[[Invocation], None], *, doc: str,
                  leading: list[inspect.Parameter], config_cls=None, preset: str | None = None,
                  own: list[inspect.Parameter] = (), common: Iterable[str] = (), cli: Iterable[str] = (),
                  fields: Iterable[str] | None = None, extra_configs: Iterable[type] = ()) -> None:
    """Register ``ovtools <name>`` with options derived from ``config_cls`` and the shared options.

    Args:
        app: the typer application.
        name: the command's name.
        body: called with the :class:`Invocation`.
        doc: the command's help text (first line: its summary).
        leading: the positional arguments (inputs).
        config_cls: the head's config dataclass (its command-line fields become options).
        preset: the preset the command uses by default (named in the help texts' defaults).
        own: the command's own options (outputs, modes) as ``inspect.Parameter``.
        common: names of :class:`CommonConfig` fields offered (all of them where ``None``).
        cli: names of shared CLI options (:data:`CLI_OPTIONS`) offered.
        fields: offer only these fields of ``config_cls`` (``None``: every command-line field).
        extra_configs: other config dataclasses whose command-line fields are offered too (e.g.
            :class:`~ovtools.engine.EngineConfig`); their values stay in :attr:`Invocation.values`.
    """
    taken = {p.name for p in leading} | {p.name for p in own}
    params = list(leading) + list(own)
    if config_cls is not None:
        params += config_parameters(config_cls, preset, taken, fields)
    for extra in extra_configs:
        params += config_parameters(extra, preset, taken)
    common_params = config_parameters(CommonConfig, preset, taken)
    wanted = set(common)
    params += [p for p in common_params if p.name in wanted]
    params += cli_parameters(cli, preset)
    config_names = set(config_defaults(config_cls)) if config_cls is not None else set()
    if fields is not None:
        config_names &= set(fields)
    setting_names = (config_names | wanted) - {"labels", "classes"}

    def command(**kwargs: Any) -> None:
        values = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in kwargs.items()}
        settings = {k: (None if v is NULL else v) for k, v in values.items() if k in setting_names and v is not None}
        values = {k: (None if v is NULL else v) for k, v in values.items()}
        if "pretrained" in settings:
            settings["pretrained"] = normalize_pretrained(settings["pretrained"])
        body(Invocation(values, settings, {k: FLAGS[k] for k in settings if k in FLAGS}))

    command.__name__ = name.replace("-", "_")
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    app.command(name)(command)
