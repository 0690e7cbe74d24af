#!/usr/bin/env python
"""Robot-camera loop: detect labels in every frame, print one JSON line per frame.

A folder of images stands in for the camera: its image files, in sorted order,
are the frames.  The pipeline is loaded once; each frame runs through it.

    python demos/camera_loop.py frames/ --labels "mug, kettle" --fps 5 --loop
    python demos/camera_loop.py frames/ --labels "mug" --model ovtools-test-vit --pretrained none

Each stdout line is ``{"frame": i, "image": path, "image_size": [h, w], "latency_ms": t,
"detections": [{"label", "class_id", "confidence", "xyxy"}]}`` (``xyxy`` in pixels of
the frame), or ``{"frame": i, "image": path, "error": "..."}`` for an unreadable
frame (the loop goes on; the exit code is then 1).  ``--relabel-every N --relabel
"a, b"`` alternates between the labels every N frames, to show
:meth:`DetectPipeline.set_labels` changing classes without a model reload.
Architectures listed in ``$OVTOOLS_MODEL_CONFIGS`` are registered by the encoder loader, as in the CLI.

Never imported by the library.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _frames(folder: Path) -> list[Path]:
    from ovtools.io.inputs import files_in, is_image_file

    return [p for p in files_in(folder, recursive=False) if is_image_file(p)]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Run DetectPipeline over a folder of frames; one JSON line per frame.")
    ap.add_argument("folder", type=Path, help="folder of image files, played in sorted order")
    ap.add_argument("--labels", help="comma-separated labels (default: the preset's class space)")
    ap.add_argument("--preset", default="detect-default", help="pipeline preset name or YAML path")
    ap.add_argument("--model", help="open_clip architecture (overrides the preset)")
    ap.add_argument("--pretrained", help="pretrained tag, checkpoint path, or 'none' for random weights")
    ap.add_argument("--device", help="auto, cpu, cuda, ...")
    ap.add_argument("--scoring", choices=["crop", "dense"], help="detection scoring (overrides the preset)")
    ap.add_argument("--fps", type=float, default=0.0, help="pace frames at this rate (0: as fast as possible)")
    ap.add_argument("--loop", action="store_true", help="restart at the first frame after the last")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: no limit)")
    ap.add_argument("--relabel-every", type=int, default=0, help="every N frames switch to --relabel labels and back")
    ap.add_argument("--relabel", help="labels used on alternate --relabel-every blocks")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the loop; returns the process exit code (0 ok, 1 some frame failed, 2 usage error)."""
    args = _parse(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    frames = _frames(args.folder)
    if not frames:
        print(f"error: no image files in {args.folder}", file=sys.stderr)
        return 2
    from ovtools.errors import OvtoolsError
    from ovtools.io.writers import detection_record
    from ovtools.pipelines import DetectPipeline
    from ovtools.pipelines.presets import normalize_pretrained

    overrides = {k: getattr(args, k) for k in ("labels", "model", "device", "scoring") if getattr(args, k)}
    if args.pretrained is not None:
        overrides["pretrained"] = normalize_pretrained(args.pretrained)
    try:
        pipe = DetectPipeline(args.preset, **overrides)  # loaded once
    except (OvtoolsError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    base_labels = pipe.class_space
    period = 1.0 / args.fps if args.fps > 0 else 0.0
    failed, i = False, 0
    next_t = time.monotonic()
    try:
        while True:
            for path in frames:
                if args.max_frames and i >= args.max_frames:
                    return int(failed)
                if args.relabel_every and args.relabel and i % args.relabel_every == 0:
                    use_alt = (i // args.relabel_every) % 2 == 1
                    pipe.set_labels(args.relabel if use_alt else base_labels)  # no model reload
                if period:
                    time.sleep(max(0.0, next_t - time.monotonic()))
                    next_t = max(next_t + period, time.monotonic())
                t0 = time.perf_counter()
                try:
                    det = pipe(path)
                    line = {"frame": i, **detection_record(path, det),
                            "latency_ms": round((time.perf_counter() - t0) * 1000, 1)}
                except Exception as e:  # a bad frame must not stop the robot
                    failed = True
                    line = {"frame": i, "image": str(path), "error": str(e)}
                print(json.dumps(line), flush=True)
                i += 1
            if not args.loop:
                return int(failed)
    except KeyboardInterrupt:
        return int(failed)


if __name__ == "__main__":
    sys.exit(main())
