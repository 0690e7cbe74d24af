"""Train an ``ovtools-field`` run from Python: :func:`train_field` (used by ``ovtools field train``).

The run folder it returns holds what ``ns-train`` writes — ``config.yml``,
``dataparser_transforms.json`` (the data-world → model-frame transform and scale) and
``nerfstudio_models/step-*.ckpt`` — and loads with nerfstudio's ``eval_setup(run / "config.yml")``
once :func:`~ovtools.nerf.method.register_methods` has run (or ovtools is installed with its entry points).

Data: a folder with nerfstudio's ``transforms.json`` (what ``ovtools datagen --kind scenes3d
--rgbd-views N`` writes) is read by nerfstudio's ``nerfstudio-data`` parser; a ScanNet-layout RGB-D
folder (``color/ depth/ pose/ intrinsic/``) by ovtools' RGB-D dataparser (``ovtools.nerf.dataparser``).
Nothing is downloaded: no LPIPS, no pseudo-depth, no viewer or network logger; the CLIP must be
available locally (shipped, cached or a file).
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataParserConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import Pipeline
from nerfstudio.utils.eval_utils import eval_setup
from nerfstudio.utils.rich_utils import CONSOLE

from .method import make_config, register_methods

__all__ = ["data_folder", "dataparser_for", "load_run", "train_field"]

# nerfstudio 1.1.5's learning-rate schedulers store numpy floats in checkpoints, which torch >= 2.6's
# default torch.load(weights_only=True) refuses; these are the only non-tensor globals they hold.
CHECKPOINT_GLOBALS = [np.core.multiarray.scalar, np.dtype, type(np.dtype(np.float64))]


def dataparser_for(data: Path, base: DataParserConfig) -> DataParserConfig:
    """The dataparser config reading ``data``: ``base`` (nerfstudio-data) for ``transforms.json``, else ovtools' RGB-D one.

    Raises:
        FileNotFoundError: ``data`` is not a folder.
        ValueError: the folder holds neither ``transforms.json`` nor an RGB-D layout.
    """
    if not data.is_dir():
        raise FileNotFoundError(f"data folder {data} does not exist")
    if (data / "transforms.json").is_file():
        base.data = data
        return base
    try:  # optional part of the nerf extra, written beside this module
        from . import dataparser as rgbd
    except ImportError:
        rgbd = None
    if rgbd is not None and rgbd.is_rgbd_folder(data):
        return rgbd.RGBDFolderDataParserConfig(data=data)
    raise ValueError(f"{data} holds no transforms.json and is not an RGB-D folder (color/ depth/ pose/ intrinsic/); "
                     "write one with: ovtools datagen OUT --kind scenes3d --rgbd-views 32")


def data_folder(datamanager_config) -> Path:
    """The data folder a run was trained on, from its data manager config (``data``, else its dataparser's)."""
    return Path(datamanager_config.data or datamanager_config.dataparser.data)


def train_field(data, out, method: str = "ovtools-field-small", *, model: str | None = None,
                pretrained: str | None = None, max_iterations: int | None = None, seed: int = 0,
                quiet: bool = False, configure: Callable[[TrainerConfig], None] | None = None,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """Train a language field on one scene and return its run folder.

    Args:
        data: a nerfstudio-data folder (``transforms.json``) or an RGB-D folder.
        out: run folder to create; it receives ``config.yml``, ``dataparser_transforms.json``
            and ``nerfstudio_models/``.  An existing run there is replaced by the new one's files.
        method: ``"ovtools-field-small"`` (CPU-friendly) or ``"ovtools-field"``.
        model: CLIP architecture the field distils (default: the method's, ovtools' default model);
            ``"ovtools-shapes"`` for the generated world.
        pretrained: its pretrained tag or checkpoint (``"shapes3d"`` for the generated world); used only
            together with ``model`` or to override the method's tag.
        max_iterations: training iterations (default: the method's; 1500 for the small one).
        seed: seed of torch, numpy and the ray sampling.
        quiet: print nothing (no config dump, no per-step table, no progress bar).
        configure: called with the nerfstudio ``TrainerConfig`` just before training, to change any setting
            (as ``ns-train``'s options would), e.g. ``lambda c: setattr(c.pipeline.model, "language_loss_weight", 0.2)``.
        progress: called after every iteration with ``(iterations done, total)``; when given, nerfstudio's own
            per-step table (redrawn with terminal escapes) is not printed.

    Returns:
        The run folder (absolute), holding ``config.yml``.

    Raises:
        ValueError: unknown ``method``, ``max_iterations < 1`` or unreadable ``data`` (see :func:`dataparser_for`).
        FileNotFoundError: ``data`` does not exist.
        ovtools.errors.WeightsUnavailableError: the CLIP's weights are not available offline.
    """
    config = make_config(method)
    if max_iterations is not None:
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        config.max_num_iterations = int(max_iterations)
        config.steps_per_save = min(config.steps_per_save, int(max_iterations))
    mcfg = config.pipeline.model
    if model is not None:
        mcfg.encoder_model = model
        mcfg.encoder_pretrained = pretrained
    elif pretrained is not None:
        mcfg.encoder_pretrained = pretrained
    data = Path(data).expanduser().resolve()
    config.pipeline.datamanager.dataparser = dataparser_for(data, config.pipeline.datamanager.dataparser)
    config.pipeline.datamanager.data = data
    run = Path(out).expanduser().resolve()
    config.run_dir = run
    config.machine.seed = seed
    if configure is not None:
        configure(config)
    register_methods()
    previous, threads = CONSOLE.quiet, torch.get_num_threads()
    CONSOLE.quiet = quiet or previous
    if quiet or progress is not None:
        config.logging.local_writer.enable = False
    try:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        config.save_config()
        trainer = config.setup(local_rank=0, world_size=1)
        trainer.setup()
        if progress is not None:
            total, first = config.max_num_iterations, []

            def report(step: int) -> None:
                if not first:
                    first.append(step)
                progress(step - first[0] + 1, total)

            trainer.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], report))
        trainer.train()
    finally:
        CONSOLE.quiet = previous
        torch.set_num_threads(threads)  # the pipeline may have set its cpu_threads
    return run


def load_run(run, test_mode: str = "inference") -> tuple[Pipeline, int]:
    """Load a trained run (its ``config.yml`` and latest checkpoint) with nerfstudio's ``eval_setup``.

    Args:
        run: run folder (holding ``config.yml``) or the ``config.yml`` itself.
        test_mode: ``"inference"`` (no images loaded), ``"test"`` or ``"val"`` (nerfstudio's modes).

    Returns:
        ``(pipeline, step)``: the pipeline in eval mode (``pipeline.model`` is an
        :class:`~ovtools.nerf.model.OVFieldModel`) and the checkpoint's step.

    The checkpoint is read from the given folder's ``nerfstudio_models/`` (a run copied or moved elsewhere
    loads its own checkpoint, not the one where it was trained).

    Raises:
        FileNotFoundError: no ``config.yml`` there, no checkpoint in its ``nerfstudio_models/``, or the
            run's data folder (whose cameras the field needs) no longer exists.
        ValueError: the checkpoint cannot be read (truncated or damaged).
    """
    path = Path(run).expanduser()
    config_path = path / "config.yml" if path.is_dir() else path
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist; pass a run folder written by train_field or ns-train")
    folder = config_path.parent.resolve()
    checkpoints = sorted((folder / "nerfstudio_models").glob("step-*.ckpt"))
    if not checkpoints:
        raise FileNotFoundError(f"run {folder} holds no checkpoint (nerfstudio_models/step-*.ckpt): its training "
                                "did not get to save one; train it again")

    def here(config: TrainerConfig) -> TrainerConfig:
        config.run_dir = folder  # checkpoints from this folder, wherever the run was written
        data = data_folder(config.pipeline.datamanager)
        if not data.exists():
            raise FileNotFoundError(f"the data folder of run {folder}, {data}, does not exist; the field needs its "
                                    "cameras (put the data back there)")
        return config

    register_methods()
    previous, CONSOLE.quiet = CONSOLE.quiet, True  # nerfstudio prints "Loading latest checkpoint" lines on stdout,
    try:  # which broke the JSON that `ovtools field query/export` and `ovtools eval` print there
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            _, pipeline, _, step = eval_setup(config_path, test_mode=test_mode, update_config_callback=here)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"the checkpoint of run {folder} ({checkpoints[-1].name}) cannot be read: "
                         f"{type(e).__name__}: {e}") from e
    finally:
        CONSOLE.quiet = previous
    return pipeline, step
