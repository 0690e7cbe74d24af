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


from . import options as opt
from .app import app
from .derive import COMMON_OPTIONS, Invocation, argument, build_command, option


def _parse_shots(text: str) -> list[int]:
    try:
        shots = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        opt.usage_error(f"--shots {text!r}: expected comma-separated integers such as 1,2,4,8,16")
    if not shots or shots[0] < 1:
        opt.usage_error(f"--shots {text!r}: each k must be >= 1")
    return shots


def probe(inv: Invocation) -> None:
    """Linear probe (full and k-shot) on frozen CLIP features, with zero-shot accuracy side by side.

    The class space (--labels / --classes / the preset's, else the training data's
    class names) gives the zero-shot classifier; the probe uses the training
    labels.  Prints JSON; --output writes it.
    """
    train, test, output, quiet, seed, trials, preset = (inv.train, inv.test, inv.output, inv.quiet, inv.seed,
                                                         inv.trials, inv.preset)
    from ..eval.data import read_labelled_images
    from ..eval.probe import probe_evaluation
    from ..pipelines import ClassifyPipeline

    ks = _parse_shots(inv.shots)
    try:
        tr, te = read_labelled_images(train), read_labelled_images(test)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    opt.check_outputs({"--output": output}, [train, test])
    overrides = dict(inv.settings)
    overrides.update(opt.class_overrides_or(inv.labels, inv.classes, preset, lambda: tr.class_names))
    pipe = opt.build_pipeline(ClassifyPipeline, preset if preset is not None else "classify-default", overrides,
                              inv.flags)
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


build_command(
    app, "probe", probe, doc=probe.__doc__, preset="classify-default",
    leading=[argument("train", Path, "Training data: ImageFolder directory or image-caption CSV."),
             argument("test", Path, "Test data in the same form (classes matched by name).")],
    own=[option("shots", str, "--shots", default="1,2,4,8,16", help="Comma-separated k for k-shot probes (k "
                "training images per class); the full training set is always probed too."),
         option("trials", int, "--trials", default=3, min=1, help="k-shot draws per k (mean reported)."),
         option("seed", int, "--seed", default=0, help="Seed for k-shot draws and the validation split.")],
    common=COMMON_OPTIONS, cli=("preset", "output", "quiet"))
