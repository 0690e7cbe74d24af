"""``ovtools probe``: the CLIP paper's linear-probe protocol next to zero-shot.

    ovtools probe train/ test/ --preset classify-shapes --shots 1,2,4,8,16 -o probe.json

Frozen image features from the shared encoder; scikit-learn logistic
regression with its L2 strength chosen on a validation split (CLIP §3.2,
Appendix A.3); ``--shots`` repeats the probe with k labelled images per class
(CLIP Figure 6, data efficiency).  Zero-shot accuracy of the same model on the
same test images is reported beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from . import options as opt
from .app import app


def _parse_shots(text: str) -> list[int]:
    try:
        shots = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        opt.usage_error(f"--shots {text!r}: expected comma-separated integers such as 1,2,4,8,16")
    if not shots or shots[0] < 1:
        opt.usage_error(f"--shots {text!r}: each k must be >= 1")
    return shots


@app.command("probe")
def probe(
    train: Annotated[Path, typer.Argument(help="Training data: ImageFolder directory or image-caption CSV.",
                                          show_default=False)],
    test: Annotated[Path, typer.Argument(help="Test data in the same form (classes matched by name).",
                                         show_default=False)],
    shots: Annotated[str, typer.Option(
        "--shots", help="Comma-separated k for k-shot probes (k training images per class); the full "
        "training set is always probed too.")] = "1,2,4,8,16",
    trials: Annotated[int, typer.Option("--trials", min=1, help="k-shot draws per k (mean reported).")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Seed for k-shot draws and the validation split.")] = 0,
    labels: opt.Labels = None,
    classes: opt.Classes = None,
    templates: opt.Templates = None,
    model: opt.Model = None,
    pretrained: opt.Pretrained = None,
    device: opt.Device = None,
    precision: opt.Precision = None,
    preset: opt.Preset = None,
    output: opt.Output = None,
    batch_size: opt.BatchSize = None,
    max_side: opt.MaxSide = None,
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    quiet: opt.Quiet = False,
) -> None:
    """Linear probe (full and k-shot) on frozen CLIP features, with zero-shot accuracy side by side.

    The class space (--labels / --classes / the preset's, else the training data's
    class names) gives the zero-shot classifier; the probe uses the training
    labels.  Prints JSON; --output writes it.
    """
    from ..eval.data import read_labelled_images
    from ..eval.probe import probe_evaluation
    from ..pipelines import ClassifyPipeline

    ks = _parse_shots(shots)
    try:
        tr, te = read_labelled_images(train), read_labelled_images(test)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    opt.check_outputs({"--output": output}, [train, test])
    overrides = opt.model_overrides(model, pretrained, device, precision, templates, batch_size, cache_dir,
                                    no_cache, max_side)
    overrides.update(opt.class_overrides_or(labels, classes, preset, lambda: tr.class_names))
    pipe = opt.build_pipeline(ClassifyPipeline, preset if preset is not None else "classify-default", overrides)
    try:
        result = probe_evaluation(pipe, tr, te, ks, trials, seed, progress=not quiet)
    except ValueError as e:  # also ImageLoadError
        opt.usage_error(str(e))
    result.update({"train": str(train), "test": str(test)})  # as given on the command line
    if output is not None:
        from ..io.writers import write_json

        write_json(output, result, [train, test])
    if not quiet:
        opt.stdout.print_json(json.dumps(result))
