"""Cold start of one CLI call: where the wall time of ``ovtools detect one.png --preset detect-shapes`` goes.

    python benchmarks/bench_coldstart.py [IMAGE] [--preset detect-shapes] [--rounds 3] [-- extra CLI args]

Each round starts fresh interpreters, one after the other (the machine is shared, so
rounds alternate and medians are printed):

* ``python -c "import torch"`` — the floor every torch program pays;
* ``python -c "import torch, torchvision, open_clip"`` — the third-party import floor of ovtools;
* the CLI call itself, run in a fresh interpreter with timing wrappers (not mocks: they call
  the real functions) around its stages: imports (torch, torchvision, open_clip as
  ``ovtools.cli`` imports it — without timm and transformers, see ``ovtools.deferred_imports`` —,
  then ``ovtools.cli`` and the library modules its commands import), model build/load (``CLIPEncoder`` construction),
  text embeddings (``build_class_embeddings``), proposals (``DetectHead.propose``),
  scoring (features + open-set scoring + NMS), writing (``write_json``), and the rest.

Wall seconds and CPU seconds (``time.process_time``: less disturbed by other jobs on the
machine) are printed per stage.  The text-embedding cache is warmed by one call first (a
user's second call); ``--cold-cache`` leaves it empty each round instead.  Compiled bytecode is
cached as for an installed package (``$PYTHONPYCACHEPREFIX`` in a temporary folder, filled by that
first call): an editable checkout run with ``$PYTHONDONTWRITEBYTECODE`` set compiles ovtools'
modules from source in every call (about 0.2 CPU s more); ``--no-bytecode-cache`` measures that.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HARNESS = textwrap.dedent(r"""
    import json, sys, time
    T = {}
    w0, c0 = time.perf_counter(), time.process_time()
    def mark(name, w, c):
        a = T.setdefault(name, [0.0, 0.0]); a[0] += w; a[1] += c
    def timed(name, fn):
        def wrapper(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                mark(name, time.perf_counter() - w, time.process_time() - c)
        return wrapper
    def imp(name, mod):
        w, c = time.perf_counter(), time.process_time()
        __import__(mod)
        mark(name, time.perf_counter() - w, time.process_time() - c)
    import os
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what ovtools/cli/__init__.py does before torch loads
    imp("import torch", "torch")
    imp("import torchvision (its ops import torch._dynamo)", "torchvision")
    import ovtools.deferred_imports as deferred
    w, c = time.perf_counter(), time.process_time()
    deferred.defer_optional_towers()  # what ovtools.cli does first (a no-op when the CLI repeats it)
    mark("import open_clip (timm, transformers deferred)", time.perf_counter() - w, time.process_time() - c)
    imp("import ovtools.cli + library (typer, rich, skimage, ...)", "ovtools.cli")
    import ovtools.encoders.clip as clip, ovtools.pipelines.base as base, ovtools.heads.detect as hd
    import ovtools.io.writers as writers, ovtools.cli as cli
    clip.CLIPEncoder.__init__ = timed("model build/load", clip.CLIPEncoder.__init__)
    base.build_class_embeddings = timed("text embeddings", base.build_class_embeddings)
    hd.DetectHead.propose = timed("proposals", hd.DetectHead.propose)
    for m in ("crop_features", "dense_box_features", "detections_from_features"):
        setattr(hd.DetectHead, m, timed("scoring (features, open-set, NMS)", getattr(hd.DetectHead, m)))
    writers.write_json = timed("writing", writers.write_json)
    sys.argv = ["ovtools", *sys.argv[1:]]
    try:
        cli.main()
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    T["total"] = [time.perf_counter() - w0, time.process_time() - c0]
    print("BENCH" + json.dumps(T))
""")


def run(args: list[str], env: dict) -> dict:
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True, cwd=env["OVTOOLS_BENCH_CWD"])
    line = [x for x in out.stdout.splitlines() if x.startswith("BENCH")]
    return json.loads(line[-1][5:]) if line else {}


def timed_python(code: str, env: dict) -> tuple[float, float]:
    wrap = ("import time; w, c = time.perf_counter(), time.process_time()\n" + code +
            "\nimport json; print('BENCH' + json.dumps([time.perf_counter() - w, time.process_time() - c]))")
    return tuple(run([sys.executable, "-c", wrap], env))


def process_time_of(args: list[str], env: dict) -> tuple[float, float]:
    """(wall s, CPU s = user + sys) of one whole child process, interpreter start included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w = time.perf_counter()
    subprocess.run(args, env=env, capture_output=True, check=True, cwd=env["OVTOOLS_BENCH_CWD"])
    w = time.perf_counter() - w
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return w, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", type=Path)
    ap.add_argument("--preset", default="detect-shapes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold-cache", action="store_true")
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="keep $PYTHONDONTWRITEBYTECODE: every module compiled from source in every call")
    ap.add_argument("--compare", type=Path, default=None,
                    help="another ovtools checkout (e.g. `git archive` of an older commit): the whole CLI call, "
                         "`ovtools --help` and `import ovtools.cli` of both, alternating in the same rounds")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ovtools-coldstart-"))
    image = args.image
    if image is None:
        from PIL import Image

        from ovtools.datasets.shapes import generate_scenes

        image = work / "one.png"
        Image.fromarray(next(iter(generate_scenes(1, seed=2000, size=192))).image).resize((400, 200)).save(image)
    here = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["OVTOOLS_CACHE_DIR"] = str(work / "cache")
    # children run in the work folder (`python -c` / `-m` put the current folder first on sys.path) with this
    # checkout first on PYTHONPATH
    env["OVTOOLS_BENCH_CWD"] = str(work)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(here), env.get("PYTHONPATH", "")] if p)
    if not args.no_bytecode_cache:  # compiled modules cached as for an installed package (see the docstring)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    cli = [sys.executable, "-c", HARNESS, "detect", str(image), "--preset", args.preset, "-o",
           str(work / "out.json"), *args.extra]
    if not args.cold_cache:
        run(cli, env)  # fills the text-embedding cache
    checkouts = {"this checkout": here} | ({f"{args.compare}": args.compare.resolve()} if args.compare else {})
    whole = {"ovtools detect (whole process)": ["-m", "ovtools.cli", *cli[3:]],
             "ovtools --help": ["-m", "ovtools.cli", "--help"],
             "python -c 'import ovtools.cli'": ["-c", "import ovtools.cli"]}
    side: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def run_side() -> None:
        for label, root in checkouts.items():
            e = dict(env, PYTHONPATH=os.pathsep.join([str(root), env["PYTHONPATH"]]))
            for what, argv in whole.items():
                side.setdefault((what, label), []).append(process_time_of([sys.executable, *argv], e))

    if args.compare:
        run_side()  # warm-up: bytecode of both checkouts
        side.clear()
    rows: dict[str, list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        if args.cold_cache:
            env["OVTOOLS_CACHE_DIR"] = str(work / f"cache{r}")
        if args.compare:
            run_side()
        rows.setdefault("python -c 'import torch'", []).append(timed_python("import torch", env))
        rows.setdefault("python -c 'import torch, torchvision, open_clip'", []).append(
            timed_python("import torch, torchvision, open_clip", env))
        for k, v in run(cli, env).items():
            rows.setdefault(k, []).append(tuple(v))
    print(f"ovtools detect {image.name} --preset {args.preset} {' '.join(args.extra)}; {args.rounds} rounds, "
          f"medians; text-embedding cache {'cold' if args.cold_cache else 'warm'}")
    print(f"{'stage':52s} {'wall s':>8s} {'CPU s':>8s}")
    total = rows.pop("total")
    floors = {k: rows.pop(k) for k in list(rows) if k.startswith("python")}
    accounted = [0.0, 0.0]
    for k, v in rows.items():
        w, c = statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)
        accounted[0] += w
        accounted[1] += c
        print(f"  {k:50s} {w:8.2f} {c:8.2f}")
    tw, tc = statistics.median(x[0] for x in total), statistics.median(x[1] for x in total)
    print(f"  {'rest (CLI parsing, settings, image decode, ...)':50s} {tw - accounted[0]:8.2f} {tc - accounted[1]:8.2f}")
    print(f"{'CLI call, total (after interpreter start)':52s} {tw:8.2f} {tc:8.2f}")
    for k, v in floors.items():
        print(f"{k:52s} {statistics.median(x[0] for x in v):8.2f} {statistics.median(x[1] for x in v):8.2f}")
    torch_w = statistics.median(x[0] for x in floors["python -c 'import torch'"])
    torch_c = statistics.median(x[1] for x in floors["python -c 'import torch'"])
    print(f"CLI call minus torch import: {tw - torch_w:.2f} s wall, {tc - torch_c:.2f} s CPU (target <= 3 s)")
    if args.compare:
        print("\nSide by side, whole processes (interpreter start included; CPU = user + sys), medians:")
        print(f"{'':34s}" + "".join(f"{label[-28:]:>30s}" for label in checkouts))
        print(f"{'':34s}" + "".join(f"{'wall s':>15s}{'CPU s':>15s}" for _ in checkouts))
        for what in whole:
            cells = [side[(what, label)] for label in checkouts]
            print(f"{what:34s}" + "".join(f"{statistics.median(x[0] for x in c):15.2f}"
                                          f"{statistics.median(x[1] for x in c):15.2f}" for c in cells))


if __name__ == "__main__":
    main()
