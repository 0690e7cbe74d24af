"""Helpers shared by the commands (their options are derived in :mod:`ovtools.cli.derive`).

* Input expansion: files, folders (``--recursive``), glob patterns.
* Usage errors: one line on stderr, exit code 2, no traceback.
* ``OVTOOLS_MODEL_CONFIGS``: registered by the encoder loader
  (:func:`ovtools.encoders.loading.register_model_configs`); commands call it
  early so that a bad entry is a usage error (exit 2).

Random weights are spelled ``--pretrained none``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..io.images import error_entry
from ..io.inputs import expand_image_inputs, skipped_summary
from .progress import stage, stderr

stdout = Console(highlight=False, soft_wrap=False)

# ------------------------------------------------------------------------------ errors
def usage_error(message: str) -> NoReturn:
    """Print ``Error: <message>`` on stderr and exit with code 2.

    Raises:
        typer.Exit: always, with code 2.
    """
    # the message is plain text: escaped, so that "ovtools[nerf]" or a path with brackets is printed as written
    stderr.print(f"[bold red]Error:[/] {escape(str(message))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def register_model_configs() -> list[Path]:
    """Add the architectures named by ``$OVTOOLS_MODEL_CONFIGS`` to open_clip (idempotent; see
    :func:`ovtools.encoders.loading.register_model_configs`, which every model load also calls).

    Returns:
        The paths added by this call.

    Raises:
        typer.Exit: (code 2) an entry that does not exist or is not an architecture config.
    """
    from ..encoders.loading import register_model_configs as register
    from ..errors import ConfigError

    try:
        return register()
    except ConfigError as e:
        usage_error(str(e))


# ------------------------------------------------------------------------------ inputs
def expand_inputs(items: list[str], recursive: bool = False) -> tuple[list[Path], list[tuple[str, str]], list[Path]]:
    """:func:`ovtools.io.inputs.expand_image_inputs`, printing one stderr line counting the non-images skipped.

    Returns:
        ``(files, problems, skipped)`` of :class:`~ovtools.io.inputs.ImageInputs`.
    """
    found = expand_image_inputs(items, recursive)
    if found.skipped:
        stderr.print(skipped_summary(found.skipped), highlight=False, soft_wrap=True, markup=False)
    return found.files, found.problems, found.skipped


# ----------------------------------------------------------------------------- helpers
def class_options(labels: str | None, classes: str | None, preset_gives_classes: bool) -> dict:
    """Check ``--labels`` / ``--classes`` and return the pipeline overrides for them.

    Raises:
        typer.Exit: (code 2) both given, neither given (and no preset with classes), or bad labels.
    """
    if labels is not None and classes is not None:
        usage_error("give either --labels or --classes, not both")
    if labels is not None:
        from ..prompts import parse_labels

        try:
            return {"labels": parse_labels(labels)}
        except ValueError as e:
            usage_error(f"--labels: {e}")
    if classes is not None:
        return {"classes": classes}
    if not preset_gives_classes:
        usage_error("no labels: give --labels \"dog, cat\" or --classes coco")
    return {}


def class_overrides_or(labels: str | None, classes: str | None, preset: str | None, fallback) -> dict:
    """Class overrides from ``--labels`` / ``--classes``; without them, and without a preset that names
    classes, ``{"labels": fallback()}`` (e.g. a dataset's own class names).

    Raises:
        typer.Exit: (code 2) as :func:`class_options`, or ``fallback`` raising ValueError / FileNotFoundError.
    """
    if labels is not None or classes is not None or preset_has_classes(preset):
        return class_options(labels, classes, True)
    try:
        return {"labels": fallback()}
    except (ValueError, FileNotFoundError) as e:
        usage_error(str(e))


def _preset_data(preset: str | None) -> dict:
    """The mapping of an explicitly named preset (``{}`` for none).

    Raises:
        typer.Exit: (code 2) unknown preset or unreadable file.
    """
    if preset is None:
        return {}
    from ..errors import ConfigError, UnknownNameError
    from ..pipelines.presets import preset_path
    from ..prompts.yamlfile import read_yaml

    try:
        data = read_yaml(preset_path(preset))
    except (UnknownNameError, ConfigError, FileNotFoundError) as e:
        usage_error(str(e))
    return data if isinstance(data, dict) else {}


def preset_value(preset: str | None, key: str):
    """A key of a preset (name or path) for messages; ``None`` when the preset or the key is absent."""
    return _preset_data(preset).get(key)


def preset_has_classes(preset: str | None) -> bool:
    """Whether an explicitly named preset sets ``classes`` or ``labels`` (exit 2 if it cannot be read)."""
    data = _preset_data(preset)
    return data.get("classes") is not None or data.get("labels") is not None


def preset_task(preset: str | None) -> str | None:
    """The ``task`` key of an explicitly named preset, or ``None`` (exit 2 if it cannot be read)."""
    return _preset_data(preset).get("task")


def build_pipeline(factory, preset: str | None, overrides: dict, flags: dict[str, str] | None = None):
    """Build a pipeline, turning every user-caused failure into a one-line usage error.

    Args:
        factory: the pipeline class.
        preset: preset name or path (``None``: built-in defaults).
        overrides: pipeline keyword arguments.
        flags: setting name → command-line flag; an error about a setting the user gave is
            prefixed with its flag (``--nms-iou: nms_iou must be ...``).

    Raises:
        typer.Exit: (code 2) missing weights, unknown model / class space / template set /
            preset, invalid preset or option value.
    """
    from ..errors import OvtoolsError

    register_model_configs()
    try:
        if preset is None:
            return factory(**overrides)
        return factory(preset, **overrides)
    except (OvtoolsError, FileNotFoundError, ValueError, TypeError) as e:
        msg = str(e)
        subject = msg.split(" setting: ", 1)[-1]  # the setting a config error is about, not the options listed before
        for name, flag in (flags or {}).items():
            if re.search(rf"\b{name}\b", subject):
                msg = f"{flag}: {msg}"
                break
        usage_error(msg)


def load_pipeline(command: str, factory, preset: str | None, settings: dict, flags: dict[str, str]):
    """Build the pipeline with a stage line, and warn in one line when its weights are random."""
    from ..pipelines.presets import normalize_pretrained

    model = settings.get("model") or preset_value(preset, "model") or "ViT-B-32"
    pretrained = settings["pretrained"] if "pretrained" in settings else preset_value(preset, "pretrained")
    stage(command, f"loading {model} ({pretrained if pretrained is not None else 'random weights'}) and the labels")
    t0 = time.perf_counter()
    pipe = build_pipeline(factory, preset, settings, flags)
    if normalize_pretrained(getattr(pipe.encoder, "pretrained", None)) is None:
        stderr.print("Warning: random weights (--pretrained none): labels and scores mean nothing; give a "
                         "pretrained tag or checkpoint for real results", markup=False, highlight=False, soft_wrap=True)
    note = getattr(pipe.encoder, "precision_note", None) or f"precision {pipe.settings['precision']}"
    stage(command, f"ready in {time.perf_counter() - t0:.1f} s: {len(pipe.labels)} labels, {note}")
    return pipe


def prepare_vis_targets(save_vis: Path | None, files: list[Path], expect_many: bool, option: str = "--save-vis",
                        tag: str = "") -> list[Path] | None:
    """Where each image's PNG (annotated image, label map) goes.

    Args:
        save_vis: the option's value (a ``.png`` file or a folder).
        files: the input files.
        expect_many: several inputs were asked for (a folder, a pattern or several arguments).
        option: the option's name, for messages.
        tag: appended to each file's stem inside a folder (``a.jpg`` → ``a<tag>.png``).

    Returns:
        One path per file, or ``None`` when ``--save-vis`` is not given.

    Raises:
        typer.Exit: (code 2) a ``.png`` file for several images, another suffix, or a
            target that is one of the inputs.
    """
    from ..io.vis import vis_path_for
    from ..io.writers import OutputPathError, check_output_path

    if save_vis is None:
        return None
    as_folder = save_vis.is_dir() or save_vis.suffix == ""
    if not as_folder:
        if save_vis.suffix.lower() != ".png":
            usage_error(f"{option} {save_vis}: give a .png file (one image) or a folder")
        if len(files) > 1 or expect_many:
            usage_error(f"{option} {save_vis}: several images need a folder, not a .png file")
        targets = [save_vis] * len(files)
    else:
        used: set[str] = set()
        targets = [vis_path_for(f, save_vis, used, tag) for f in files]
    try:
        for t in targets:
            check_output_path(t, files)
    except OutputPathError as e:
        usage_error(f"{option}: {e}")
    return targets


def vis_file(save_vis: Path | None) -> Path | None:
    """``--save-vis`` when it names one ``.png`` file (so it can be checked against the other outputs)."""
    return save_vis if save_vis is not None and save_vis.suffix.lower() == ".png" else None


def check_outputs(paths: dict[str, Path | None], files: list[Path]) -> None:
    """Refuse outputs that are inputs, folders, or the same file twice.

    Args:
        paths: option name → path (``None`` entries are ignored).
        files: the input files.

    Raises:
        typer.Exit: (code 2) on any conflict.
    """
    from ..io.writers import OutputPathError, check_output_path

    given = {k: v for k, v in paths.items() if v is not None}
    seen: dict[Path, str] = {}
    for opt, p in given.items():
        try:
            check_output_path(p, files)
        except OutputPathError as e:
            usage_error(f"{opt}: {e}")
        key = p.expanduser().resolve()
        if key in seen:
            usage_error(f"{opt} and {seen[key]} name the same file {p}")
        seen[key] = opt


def report_failure(progress, name: str | Path, error: BaseException | str) -> dict:
    """Print ``skipped <name>: <reason>`` on stderr and return the JSON ``errors`` entry
    (:func:`ovtools.io.images.error_entry`)."""
    entry = error_entry(name, error)
    print_failure(progress, entry)
    return entry


def print_failure(progress, entry: dict) -> None:
    """Print an ``errors`` entry as ``skipped <name>: <reason>`` above the progress bar."""
    progress.console.print(f"[yellow]skipped[/] {escape(str(entry['image']))}: {escape(str(entry['error']))}",
                           markup=True, highlight=False, soft_wrap=True)
