"""Print the evaluation-world quality figures as a markdown table (the table in README.md).

    python scripts/quality_report.py [WORKDIR]

Generates held-out data and measures it with the code behind `ovtools datagen`, `ovtools eval` and
`ovtools probe` with the shipped ovtools-shapes models (ovtools.eval.report): 2D classification,
detection and segmentation with `shapes`, 3D segmentation with `shapes3d`.
"""

from __future__ import annotations

import datetime
import sys
import tempfile
import time

from ovtools.eval.report import markdown_table, shapes_quality


def main() -> None:
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="ovtools-quality-")
    t0 = time.perf_counter()
    result = shapes_quality(work)
    print(f"Measured {datetime.date.today().isoformat()} with `python scripts/quality_report.py` "
          f"({time.perf_counter() - t0:.0f} s on this machine):\n")
    print(markdown_table(result))


if __name__ == "__main__":
    main()
