"""``ovtools models``: the models, class spaces, template sets and presets ovtools can use.

    ovtools models                   # open_clip architectures with their pretrained tags
    ovtools models --filter vit-b    # only matching rows
    ovtools models --classes         # built-in class spaces
    ovtools models --templates       # built-in prompt template sets
    ovtools models --presets         # pipeline presets
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from . import options as opt
from .app import app


def _cached(arch: str, tag: str) -> bool:
    """Whether open_clip's weights for ``(arch, tag)`` are in the Hugging Face cache (no network)."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    repo = (open_clip.get_pretrained_cfg(arch, tag) or {}).get("hf_hub", "").strip("/")
    if not repo:
        return False
    parts = repo.split("/")
    repo_id, folder = "/".join(parts[:2]), "/".join(parts[2:])
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(repo_id, f"{folder}/{name}" if folder else name), str):
            return True
    return False


def _model_table(filter_text: str | None) -> Table:
    """Shipped weights first, then weights already in the Hugging Face cache, then the rest (downloads)."""
    import open_clip

    from ..encoders import DEFAULT_MODEL, DEFAULT_PRETRAINED
    from ..encoders.loading import SHIPPED_TAGS

    rows: list[tuple[int, str, str, str]] = []
    for arch, tag in SHIPPED_TAGS:
        rows.append((0, arch, tag, "[bold green]shipped with ovtools (offline)[/]"))
    for arch, tag in open_clip.list_pretrained():
        cached = _cached(arch, tag)
        note = "[green]cached (offline)[/]" if cached else "[dim]download on first use[/]"
        if (arch, tag) == (DEFAULT_MODEL, DEFAULT_PRETRAINED):
            note += " [bold](default)[/]"
        rows.append((1 if cached else 2, arch, tag, note))
    needle = (filter_text or "").lower()
    t = Table(title="Weights (--model NAME --pretrained TAG; 'none' = random weights, or a local checkpoint path)",
              header_style="bold")
    t.add_column("model", overflow="fold")
    t.add_column("pretrained", overflow="fold")
    t.add_column("available", overflow="fold")
    for _, arch, tag, note in sorted(rows, key=lambda r: (r[0], r[1].lower(), r[2])):
        if needle and needle not in arch.lower() and needle not in tag.lower():
            continue
        t.add_row(arch, tag, note)
    return t


def _names_table(title: str, rows: list[tuple[str, str]]) -> Table:
    t = Table(title=title, header_style="bold")
    t.add_column("name")
    t.add_column("description", overflow="fold")
    for name, desc in rows:
        t.add_row(name, desc)
    return t


def _class_rows() -> list[tuple[str, str]]:
    from ..prompts import ClassSpace, available_class_spaces

    rows = []
    for name in available_class_spaces():
        try:
            space = ClassSpace.load(name)
            desc = f"{len(space)} classes" + (f" — {space.description}" if space.description else "")
        except Exception as e:  # a broken file still shows up, with its error
            desc = f"[red]invalid: {e}[/]"
        rows.append((name, desc))
    return rows


def _template_rows() -> list[tuple[str, str]]:
    from ..prompts import available_template_sets, load_templates

    rows = []
    for name in available_template_sets():
        try:
            ts = load_templates(name)
            desc = f"{len(ts)} templates, e.g. {ts.templates[0]!r}"
        except Exception as e:
            desc = f"[red]invalid: {e}[/]"
        rows.append((name, desc))
    return rows


def _preset_rows() -> list[tuple[str, str]]:
    from ..pipelines.presets import available_presets, preset_path
    from ..prompts.yamlfile import read_yaml

    rows = []
    for name in available_presets():
        try:
            d = read_yaml(preset_path(name)) or {}
            desc = (f"{d.get('task', '?')}: model {d.get('model', '?')} / {d.get('pretrained', '?')}, "
                    f"classes {d.get('classes') or d.get('labels') or '-'}")
        except Exception as e:
            desc = f"[red]invalid: {e}[/]"
        rows.append((name, desc))
    return rows


@app.command("models")
def models(
    filter_text: Annotated[Optional[str], typer.Option(
        "--filter", "-f", help="Show only models whose name or tags contain this text (case-insensitive).",
        show_default=False)] = None,
    classes: Annotated[bool, typer.Option(
        "--classes", help="List the built-in class spaces (for --classes) instead of models.")] = False,
    templates: Annotated[bool, typer.Option(
        "--templates", help="List the built-in prompt template sets (for --templates) instead of models.")] = False,
    presets: Annotated[bool, typer.Option(
        "--presets", help="List the pipeline presets (for --preset) instead of models.")] = False,
) -> None:
    """List the models ovtools can load, or the built-in class spaces, template sets and presets.

    Models are open_clip architectures with their pretrained tags, plus the
    model shipped with ovtools (ovtools-shapes / shapes).  Architectures named
    in $OVTOOLS_MODEL_CONFIGS are included.  Weights of a tag are downloaded on
    first use; offline, pass a local checkpoint with --pretrained PATH.
    """
    opt.register_model_configs()
    shown = False
    if classes:
        opt.stdout.print(_names_table("built-in class spaces (--classes NAME)", _class_rows()))
        shown = True
    if templates:
        opt.stdout.print(_names_table("built-in template sets (--templates NAME)", _template_rows()))
        shown = True
    if presets:
        opt.stdout.print(_names_table("pipeline presets (--preset NAME)", _preset_rows()))
        shown = True
    if not shown:
        opt.stdout.print(_model_table(filter_text))
