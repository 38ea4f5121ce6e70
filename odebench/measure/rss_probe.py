"""Subprocess entry of :func:`odebench.measure.peak_rss_subprocess`: one solve, peak RSS.

``python -m odebench.measure.rss_probe '<json spec>'`` where the spec has the keys ``backend``,
``problem``, ``problem_kwargs``, ``fingerprint`` (of the problem the caller measured; a rebuilt
problem that differs is refused), ``method``, ``rtol``, ``atol``, ``gradient``, ``options``,
``dtype``, ``device``, ``threads`` (see ``odebench.backends.base.probe_spec``).

Prints one JSON line ``{"baseline_bytes", "nograd_bytes", "peak_bytes", "status", "message",
"peak_reset"}`` (and ``peak_cuda_bytes`` on a GPU): the resident set after the imports, the
problem's setup and the backend's library import; the peak during one forward solve without
gradient; then the peak during the run's forward (and backward) pass. The peak is reset to the
current resident set before each solve where the kernel allows (``peak_reset``); elsewhere each
reading is the process's peak so far. Exits 2 when the spec cannot be run at all.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import torch

from odebench.measure.memory import max_rss_bytes, reset_peak_rss, rss_bytes


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
    resettable = reset_peak_rss()
    baseline = rss_bytes() if resettable else max_rss_bytes()
    status, message = "ok", ""
    nograd = None
    try:
        backend.run_once(dataclasses.replace(run, gradient=None))
        nograd = max_rss_bytes()
        reset_peak_rss()
        if torch.device(run.device).type == "cuda":
            torch.cuda.reset_peak_memory_stats(run.device)
        backend.run_once(run)
    except Exception as exc:  # the probe reports a failed solve, it does not crash on it
        status, message = backend.status_of(exc), f"{type(exc).__name__}: {exc}"
    report = {"baseline_bytes": baseline, "nograd_bytes": nograd, "peak_bytes": max_rss_bytes(),
              "status": status, "message": message, "peak_reset": resettable}
    if torch.device(run.device).type == "cuda":
        report["peak_cuda_bytes"] = torch.cuda.max_memory_allocated(run.device)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
