"""Rerun a seeded sample of a results folder's ``ok`` rows serially, in this process, and compare
their deterministic columns (status, NFE, steps, errors, saved bytes) with the recorded rows.

Used to check that a ``--workers N`` run gives the serial rows (README, "Running the grids on a
cluster"). Run it from a clean checkout of the commit that recorded the rows::

    python scripts/serial_vs_cluster.py reports/data --per-study 24 --seed 0

Exit status 1 when any rerun point differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from odebench import studies
from odebench.results import RUN_COLUMNS, _key_value
from odebench.studies.base import Settings, execute_point

COLUMNS = ("status", "nfe_forward", "nfe_backward", "steps", "rejected", "sol_error",
           "grad_error", "saved_bytes")
#: Columns that a grid point and its finished row may record differently (the run's settings).
_SETTING_COLUMNS = ("mode", "threads")


def _run_key(row: Any) -> tuple[Any, ...]:
    values = row.to_dict() if hasattr(row, "to_dict") else row
    return tuple(_key_value(c, values.get(c)) for c in RUN_COLUMNS if c not in _SETTING_COLUMNS)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="results folder of <study>.jsonl files")
    parser.add_argument("--per-study", type=int, default=24, help="points rerun per study")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--mode", default="full", help="grid the rows came from (full/quick)")
    args = parser.parse_args(argv)
    settings = Settings(mode=args.mode)
    rng = random.Random(args.seed)
    n_points = n_bad = 0
    for path in sorted(args.results.glob("*.jsonl")):
        study = studies.get(path.stem)
        recorded = {_run_key(r): r for r in map(json.loads, path.read_text().splitlines())}
        points = [p for p in study.grid(settings)
                  if recorded.get(_run_key(p), {}).get("status") == "ok"]
        for point in rng.sample(points, min(args.per_study, len(points))):
            serial = dataclasses.asdict(execute_point(study, point, settings))
            row = recorded[_run_key(point)]
            diffs = [(c, serial.get(c), row.get(c)) for c in COLUMNS
                     if not _same(serial.get(c), row.get(c))]
            n_points += 1
            n_bad += bool(diffs)
            print(path.stem, point.problem, point.backend, point.method, point.gradient,
                  point.rtol, "same" if not diffs else diffs, flush=True)
    print(f"{n_points} points rerun serially, {n_bad} with a differing deterministic column")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
