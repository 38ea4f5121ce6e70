"""Subprocess entry of :func:`odebench.measure.peak_rss_subprocess`: one solve, peak RSS.

``python -m odebench.measure.rss_probe '<json spec>'`` where the spec has the keys ``backend``,
``problem``, ``problem_kwargs``, ``fingerprint`` (of the problem the caller measured; a rebuilt
problem that differs is refused), ``method``, ``rtol``, ``atol``, ``gradient``, ``options``,
``dtype``, ``device``, ``threads`` (see ``odebench.backends.base.probe_spec``).

Prints one JSON line ``{"baseline_bytes", "peak_bytes", "status", "message"}`` (and
``peak_cuda_bytes`` on a GPU): ``ru_maxrss`` after the imports, the problem's setup and the
backend's library import, then after one forward (and backward) pass. Exits 2 when the spec
cannot be run at all.
"""

from __future__ import annotations

import json
import sys

import torch

from odebench.measure.memory import max_rss_bytes


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m odebench.measure.rss_probe '<json spec>'", file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    from odebench import backends, problems
    from odebench.backends.base import RunSpec, problem_fingerprint

    backend = backends.get(spec["backend"])
    ok, why = backend.available()
    if not ok:
        print(f"backend {spec['backend']!r} unavailable: {why}", file=sys.stderr)
        return 2
    problem = problems.get(spec["problem"], **spec["problem_kwargs"])
    if problem_fingerprint(problem) != spec["fingerprint"]:
        print(f"problems.get({spec['problem']!r}, **{spec['problem_kwargs']}) differs from the "
              "measured problem: pass RunSpec.problem_kwargs", file=sys.stderr)
        return 2
    run = RunSpec(problem=problem, method=spec["method"], rtol=spec["rtol"], atol=spec["atol"],
                  gradient=spec["gradient"], options=spec["options"], dtype=spec["dtype"],
                  device=spec["device"], threads=spec["threads"], repeats=0)
    baseline = max_rss_bytes()
    status, message = "ok", ""
    try:
        backend.run_once(run)
    except Exception as exc:  # the probe reports a failed solve, it does not crash on it
        status, message = backend.status_of(exc), f"{type(exc).__name__}: {exc}"
    report = {"baseline_bytes": baseline, "peak_bytes": max_rss_bytes(), "status": status,
              "message": message}
    if torch.device(run.device).type == "cuda":
        report["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
