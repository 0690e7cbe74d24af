"""Options and helpers shared by the ``classify`` and ``detect`` commands.

* Typer option declarations (``Annotated`` aliases) so every command spells
  ``--model``, ``--pretrained``, ``--labels``, ... the same way.
* Input expansion: files, folders (``--recursive``), glob patterns.
* Usage errors: one line on stderr, exit code 2, no traceback.
* ``OVTOOLS_MODEL_CONFIGS``: an ``os.pathsep``-separated list of folders or
  JSON files with open_clip architecture configs, passed to
  ``open_clip.add_model_config`` before any model is built, so that custom
  architectures can be named with ``--model`` (the tests use it for their tiny
  random-weight models).

Random weights are spelled ``--pretrained none``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console

from ..io.images import IMAGE_SUFFIXES

MODEL_CONFIGS_ENV = "OVTOOLS_MODEL_CONFIGS"

stdout = Console(highlight=False, soft_wrap=False)
stderr = Console(stderr=True, highlight=False)

# ----------------------------------------------------------------------------- options
Images = Annotated[list[str], typer.Argument(
    help="Image files, folders (their images; see --recursive) or quoted glob patterns ('photos/**/*.jpg').",
    show_default=False)]
Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="open_clip architecture (e.g. ViT-B-32) or hf-hub:org/repo id; `ovtools models` "
    "lists them. Default: the preset's (ViT-B-32).", show_default=False)]
Pretrained = Annotated[Optional[str], typer.Option(
    "--pretrained", help="Pretrained tag (e.g. laion2b_s34b_b79k), path to a local .safetensors/.pt checkpoint, "
    "or 'none' for random weights. Default: the preset's (laion2b_s34b_b79k).", show_default=False)]
Device = Annotated[Optional[str], typer.Option(
    "--device", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps. Default: auto.", show_default=False)]
Precision = Annotated[Optional[str], typer.Option(
    "--precision", help="auto, fp32, fp16 or bf16. auto: bf16 on CPUs with native bf16 units (AMX / AVX-512 BF16) "
    "and bf16-capable GPUs, fp16 on older CUDA GPUs, else fp32. Default: the preset's (auto).",
    show_default=False)]
Labels = Annotated[Optional[str], typer.Option(
    "--labels", "-l", help="Comma-separated labels in plain language, e.g. \"zebra, goat, grass plain\"; "
    "quote a label that contains a comma: '\"salt, pepper\", bowl'. Excludes --classes.", show_default=False)]
Classes = Annotated[Optional[str], typer.Option(
    "--classes", "-c", help="A built-in class space (coco, imagenet, scannet20, shapes, shapes3d, ...; `ovtools "
    "models --classes` lists them) or a class-space YAML file. Excludes --labels.", show_default=False)]
Templates = Annotated[Optional[str], typer.Option(
    "--templates", "-t", help="Prompt template set: built-in name (`ovtools models --templates`) or YAML file. "
    "Default: the preset's, else the class space's own, else openai_imagenet.", show_default=False)]
Output = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write results as JSON to this file (schema: ovtools.io.writers).",
    show_default=False, dir_okay=False)]
SaveVis = Annotated[Optional[Path], typer.Option(
    "--save-vis", help="Save annotated PNGs: a .png file for one image, a folder for several "
    "(one <image stem>.png each).", show_default=False)]
BatchSize = Annotated[Optional[int], typer.Option(
    "--batch-size", "-b", min=1, help="Images per encoder forward pass (classify, eval of classification; "
    "default 32) or crops per forward pass (detect, segment; default: the preset's crop_batch_size, 64).",
    show_default=False)]
CacheDir = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Folder of the text-embedding cache. Default: $OVTOOLS_CACHE_DIR or ~/.cache/ovtools/text.",
    show_default=False, file_okay=False)]
NoCache = Annotated[bool, typer.Option(
    "--no-cache", help="Recompute text embeddings instead of reading/writing the cache.")]
Recursive = Annotated[bool, typer.Option(
    "--recursive", "-r", help="Also take images from sub-folders of folder arguments.")]
MaxSide = Annotated[Optional[int], typer.Option(
    "--max-side", min=16, help="Decode images at most this many pixels on the longer side (faster, bounded "
    "memory); results stay in original-image pixels. Default: the preset's.", show_default=False)]
Preset = Annotated[Optional[str], typer.Option(
    "--preset", help="Pipeline preset: a name from pipelines/ (`ovtools models --presets`) or a YAML file; "
    "other options override its values.", show_default=False)]
Scoring = Annotated[Optional[str], typer.Option(
    "--scoring", help="Region scoring. crop: encode a context crop per proposal (accurate); dense: one "
    "MaskCLIP dense pass per image, pooled per box or mask (fast); fusion (segmentation only): ConceptFusion "
    "blend of global and crop features. Default: the preset's (crop).", show_default=False)]
Threshold = Annotated[Optional[float], typer.Option(
    "--threshold", min=0.0, max=1.0, help="Smallest confidence reported (a box or mask), in [0, 1]; a label must "
    "also beat its negatives. Default: the preset's (0.3 detect-default, segment-default and segment-shapes; "
    "0.5 detect-shapes).", show_default=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the results (table or JSON) on stdout.")]


# ------------------------------------------------------------------------------ errors
def usage_error(message: str) -> NoReturn:
    """Print ``Error: <message>`` on stderr and exit with code 2.

    Raises:
        typer.Exit: always, with code 2.
    """
    stderr.print(f"[bold red]Error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def register_model_configs() -> list[Path]:
    """Add the architectures named by ``$OVTOOLS_MODEL_CONFIGS`` to open_clip (idempotent).

    Returns:
        The paths added by this call.

    Raises:
        typer.Exit: (code 2) an entry that does not exist.
    """
    value = os.environ.get(MODEL_CONFIGS_ENV, "")
    if not value.strip():
        return []
    paths = [Path(e).expanduser() for e in value.split(os.pathsep) if e.strip()]
    for p in paths:  # checked before importing open_clip (and torch): a typo fails fast
        if not p.exists():
            usage_error(f"{MODEL_CONFIGS_ENV}: {p} does not exist")
    import open_clip
    from open_clip import factory

    known = {Path(p).resolve() for p in getattr(factory, "_MODEL_CONFIG_PATHS", [])}
    added = []
    for p in paths:
        if p.resolve() not in known:
            open_clip.add_model_config(p)
            known.add(p.resolve())
            added.append(p)
    return added


# ------------------------------------------------------------------------------ inputs
def _is_pattern(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def expand_inputs(items: list[str], recursive: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """Turn command-line image arguments into files.

    Args:
        items: files (kept even without an image suffix: they fail by name if not images),
            folders (their image files, sorted; hidden files skipped) and glob patterns
            (``**`` crosses folders; matched folders are expanded like folder arguments).
        recursive: descend into sub-folders of folder arguments.

    Returns:
        ``(files, problems)``: unique files in argument order, and ``(argument, reason)``
        for arguments that yield nothing (missing path, pattern without matches, folder
        without images).
    """
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for item in items:
        p = Path(item).expanduser()
        if p.is_file():
            add(p)
        elif p.is_dir():
            found = _images_in(p, recursive)
            if not found:
                problems.append((item, "folder has no image files" + ("" if recursive else " (try --recursive)")))
            for f in found:
                add(f)
        elif _is_pattern(item):
            matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
            n = 0
            for m in map(Path, matches):
                if m.is_dir():
                    for f in _images_in(m, recursive):
                        add(f)
                        n += 1
                elif m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES:
                    add(m)
                    n += 1
            if not n:
                problems.append((item, "pattern matches no image files"))
        else:
            problems.append((item, "no such file or folder"))
    return files, problems


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


def model_overrides(model: str | None, pretrained: str | None, device: str | None, precision: str | None,
                    templates: str | None, batch_size: int | None, cache_dir: Path | None, no_cache: bool,
                    max_side: int | None) -> dict:
    """Pipeline keyword overrides for the options the user actually gave.

    Raises:
        typer.Exit: (code 2) an unknown precision.
    """
    from ..pipelines.presets import normalize_pretrained

    if precision is not None and precision not in ("auto", "fp32", "fp16", "bf16"):
        usage_error(f"--precision must be auto, fp32, fp16 or bf16, got {precision!r}")
    out: dict = {}
    for key, value in (("model", model), ("device", device), ("precision", precision), ("templates", templates),
                       ("batch_size", batch_size), ("max_side", max_side)):
        if value is not None:
            out[key] = value
    if pretrained is not None:
        out["pretrained"] = normalize_pretrained(pretrained)
    if cache_dir is not None:
        out["cache_dir"] = cache_dir
    if no_cache:
        out["use_cache"] = False
    return out


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


def preset_has_classes(preset: str | None) -> bool:
    """Whether an explicitly named preset sets ``classes`` or ``labels`` (exit 2 if it cannot be read)."""
    data = _preset_data(preset)
    return data.get("classes") is not None or data.get("labels") is not None


def preset_task(preset: str | None) -> str | None:
    """The ``task`` key of an explicitly named preset, or ``None`` (exit 2 if it cannot be read)."""
    return _preset_data(preset).get("task")


def build_pipeline(factory, preset: str | None, overrides: dict):
    """Build a pipeline, turning every user-caused failure into a one-line usage error.

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
        usage_error(str(e))


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


def make_progress(total: int, description: str):
    """A rich progress bar on stderr (hidden for a single image).

    Args:
        total: number of images.
        description: text left of the bar.

    Returns:
        ``(progress, task_id)``; use ``progress`` as a context manager and
        ``progress.advance(task_id)`` per image; ``progress.console`` prints above the bar.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=stderr, disable=total < 2, transient=False)
    return progress, progress.add_task(description, total=total)


def loaded_batches(paths: list[Path], batch_size: int, max_side: int | None, progress, task, errors: list[dict]):
    """Decode ``paths`` in chunks of ``batch_size``, reporting and skipping unreadable files.

    A file that fails to decode is printed (``skipped <name>: <reason>``), appended to
    ``errors`` and counted on the progress bar; the caller advances the bar for the rest.

    Yields:
        Non-empty lists of ``(index into paths, path, LoadedImage)``.
    """
    from ..io.images import load_image

    for start in range(0, len(paths), batch_size):
        loaded = []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                loaded.append((i, paths[i], load_image(paths[i], max_side)))
            except Exception as e:  # ImageLoadError, or anything else a broken file triggers
                errors.append(report_failure(progress, paths[i], e))
                progress.advance(task)
        if loaded:
            yield loaded


def report_failure(progress, name: str | Path, error: BaseException | str) -> dict:
    """Print ``skipped <name>: <reason>`` on stderr and return the JSON ``errors`` entry."""
    msg = str(error)
    prefix = f"{name}: "
    if msg.startswith(prefix):  # ImageLoadError messages already start with the file name
        msg = msg[len(prefix):]
    progress.console.print(f"[yellow]skipped[/] {name}: {msg}", markup=True, highlight=False, soft_wrap=True)
    return {"image": str(name), "error": msg}
