"""Command line: ``odebench run | report | verify | problems | serve`` (also
``python -m odebench``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from odebench.errors import InvalidInputError

DEFAULT_RESULTS = Path("reports/data")
DEFAULT_REPORT = Path("reports")
DEFAULT_ASV_HTML = Path("reports/asv")

log = logging.getLogger("odebench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odebench",
        description="Accuracy, speed and memory of ways to solve and differentiate neural ODEs, "
                    "measured against float64 references.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a study (or 'all') and append its rows to the results store",
        description="Run a study's grid; rows already in the results store are skipped, so an "
                    "interrupted run resumes where it stopped.")
    run.add_argument("study", help="work_precision, gradient_accuracy, lorenz_drift, "
                                   "memory_scaling, overhead, stiff, models, per_sample, "
                                   "gradient_scaling, seminorm, or 'all'")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="CI-sized grid (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="publication grid (slow)")
    run.set_defaults(mode="quick")
    run.add_argument("--device", default="cpu",
                     help="torch device: cpu (default), cuda or cuda:N; cuda must be available")
    run.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                     help="floating-point type of the runs (default float64)")
    run.add_argument("--threads", type=int, default=1,
                     help="torch intra-op threads while timing (default 1)")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                     help="results directory, one JSONL file per study "
                          f"(default {DEFAULT_RESULTS})")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-retry", dest="retry", action="store_false",
                     help="keep recorded 'error' rows (by default a rerun runs them again)")
    run.add_argument("--repair", action="store_true",
                     help="first move bad lines of the results files to <study>.jsonl.bad")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="run the grid points on a local dask cluster of N worker processes "
                            "(needs the extra: pip install 'odebench[distributed]')")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run the grid points on an existing dask cluster")

    report = sub.add_parser("report", help="build tables, figures and reports/index.html",
                            description="Build the Markdown/CSV/LaTeX tables, the seaborn "
                                        "figures and the HTML page from the results rows only.")
    report.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help=f"results directory to read (default {DEFAULT_RESULTS})")
    report.add_argument("--out", type=Path, default=DEFAULT_REPORT,
                        help=f"output directory (default {DEFAULT_REPORT})")
    report.add_argument("--repair", action="store_true",
                        help="first move bad lines of the results files to <study>.jsonl.bad")
    report.add_argument("--allow-mixed", action="store_true",
                        help="build from rows of several or dirty commits (exploration only; "
                             "every table then lists its commits)")

    verify = sub.add_parser(
        "verify", help="gradient-correctness gate: exit 1 when a gradient breaks its budget, "
                       "2 when the check itself cannot run",
        description="Compare every gradient method with the float64 reference gradient on the "
                    "verification set (float64; dopri5 at rtol=atol=1e-9 on the non-stiff problems, "
                    "rodas5p at rtol=1e-8 on the stiff ones) and exit non-zero when a result "
                    "breaks its budget. With --model, check your own model's gradients "
                    "against a float64 reference instead.")
    cases = verify.add_mutually_exclusive_group()
    cases.add_argument("--quick", action="store_true",
                       help="a subset (decay, Lotka-Volterra, a small MLP, Lorenz T=1 and T=2, "
                            "ROBER T=40, backsolve with reanchor and checkpointed with "
                            "checkpoint_every=3 on Lotka-Volterra) that runs in about a minute")
    cases.add_argument("--stiff", action="store_true",
                       help="only the stiff cases (stiff linear system, ROBER T=40, HIRES T=5; "
                            "rodas5p)")
    verify.add_argument("--gradient", action="append", default=None,
                        help="check only this gradient method (repeatable)")
    verify.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the table as JSON to PATH")
    verify.add_argument(
        "--model", default=None, metavar="MODULE:FACTORY",
        help="check your own model instead of the verification set: FACTORY() returns "
             "(func, y0, t) or (func, y0, t, settings), settings a dict of method, rtol, atol, "
             "options, budget, reference, loss, gradients; each gradient method's gradients are "
             "compared with a float64 reference (odebench.testing). MODULE is imported with the "
             "working directory on sys.path, e.g. --model mypkg.models:make_ode")

    problems = sub.add_parser("problems", help="list the problem registry",
                              description="List registered problems with their sources.")
    kind = problems.add_mutually_exclusive_group()
    kind.add_argument("--stiff", dest="stiff", action="store_const", const=True,
                      help="only stiff problems")
    kind.add_argument("--nonstiff", dest="stiff", action="store_const", const=False,
                      help="only non-stiff problems")

    serve = sub.add_parser(
        "serve", help="serve the asv benchmark report on 127.0.0.1 (loopback only)",
        description="Serve a published asv report over HTTP on 127.0.0.1 only (asv's page "
                    "fetches its data, so file:// does not work; `asv preview` binds 0.0.0.0). "
                    "Record and publish it first with `nox -s bench`. Prints the address and "
                    "the log-scale addresses of the gradient-error graphs; Ctrl-C stops.")
    serve.add_argument("--dir", type=Path, default=DEFAULT_ASV_HTML,
                       help=f"folder holding index.html (default {DEFAULT_ASV_HTML})")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    return parser


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device '{device}' requested but CUDA is not available here")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InvalidInputError(f"unknown device '{device}'; valid: cpu, cuda, cuda:N")


def _repair(results: Path, names: list[str]) -> None:
    from odebench.results import ResultsStore

    store = ResultsStore(results)
    for name in names:
        with store.lock(name, waiting=log.warning):
            moved = store.repair(name)
        if moved:
            log.warning("%s: moved %d bad line(s) to %s", store.path(name), moved,
                        results / f"{name}.jsonl.bad")


def _cmd_run(args: argparse.Namespace) -> int:
    from odebench import studies
    from odebench.studies.distributed import cluster_client

    _check_device(args.device)
    names = list(studies.STUDY_MODULES) if args.study == "all" else [args.study]
    chosen = [studies.get(name) for name in names]
    settings = studies.Settings(mode=args.mode, device=args.device, dtype=args.dtype,
                                threads=args.threads)
    if args.repair:
        _repair(args.results, names)
    failed = 0
    with cluster_client(workers=args.workers, scheduler=args.scheduler) as client:
        for study in chosen:
            summary = studies.run_study(study, settings, args.results,
                                        progress=not args.no_progress, retry=args.retry,
                                        client=client)
            log.info("%s: %d rows written, %d already present -> %s", study.name,
                     summary.written, summary.skipped, args.results / f"{study.name}.jsonl")
            failed += summary.failed
    if failed:
        log.error("%d run(s) failed with status 'error' (see their message column); a rerun "
                  "runs them again", failed)
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from odebench.report.build import build_report
    from odebench.results import ResultsStore

    store = ResultsStore(args.results)
    if not args.results.is_dir():
        raise InvalidInputError(f"results folder {args.results} does not exist; nothing written")
    if args.repair:
        _repair(args.results, store.studies())
    if store.rows().empty:
        raise InvalidInputError(f"results folder {args.results} holds no results rows; "
                                "nothing written")
    outputs = build_report(args.results, args.out, allow_mixed=args.allow_mixed)
    for kind, paths in outputs.items():
        for path in paths:
            log.info("%s: %s", kind, path)
    log.info("open %s (the asv report: `nox -s bench`, then `odebench serve`)",
             args.out / "index.html")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from odebench import verify

    cases = (verify.QUICK_CASES if args.quick else
             verify.STIFF_CASES if args.stiff else verify.FULL_CASES)
    gradients = tuple(args.gradient) if args.gradient else None
    if gradients:
        import odebench

        unknown = [g for g in gradients if g not in odebench.GRADIENTS]
        if unknown:
            raise InvalidInputError(f"unknown gradient(s) {unknown}; valid gradients: "
                                    f"{', '.join(odebench.GRADIENTS)}")
    if args.model is not None:
        return _verify_model(args, gradients)
    report = verify.run(cases, gradients, progress=lambda s: log.info("verifying %s", s))
    print(verify.format_table(report))
    if args.json is not None:
        verify.write_json(report, args.json)
        log.info("wrote %s", args.json)
    return 0 if report.ok else 1


def _verify_model(args: argparse.Namespace, gradients: tuple[str, ...] | None) -> int:
    from odebench import testing

    if args.quick or args.stiff:
        raise InvalidInputError("--quick and --stiff select the verification set; they do not "
                                "apply to --model")
    try:
        reports = testing.check_model(args.model, gradients,
                                      progress=lambda s: log.info("checking %s", s))
    except InvalidInputError:
        raise
    except Exception as err:  # the gate itself broke: exit 2, not the breach code 1
        message = " ".join(f"{type(err).__name__}: {err}".split())
        log.error("the gradient check of %s crashed (no verdict): %s", args.model, message)
        return 2
    print(testing.format_summary(reports, args.model))
    if args.json is not None:
        testing.write_json(reports, args.json, args.model)
        log.info("wrote %s", args.json)
    return 0 if all(r.ok for r in reports) else 1


def _cmd_problems(args: argparse.Namespace) -> int:
    from odebench import problems

    for name in problems.names(stiff=args.stiff):
        problem = problems.get(name)
        kind = "stiff" if problem.stiff else ("chaotic" if problem.chaotic else "non-stiff")
        print(f"{name:<16} {kind:<10} n={problem.y0.numel():<5} "
              f"t=[{float(problem.t_eval[0]):g}, {float(problem.t_eval[-1]):g}]  "
              f"{problem.description}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from odebench.report.serve import serve

    serve(args.dir, args.port)
    return 0


COMMANDS = {"run": _cmd_run, "report": _cmd_report, "verify": _cmd_verify,
            "problems": _cmd_problems, "serve": _cmd_serve}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``odebench`` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    logging.captureWarnings(True)
    try:
        return COMMANDS[args.command](args)
    except InvalidInputError as err:
        log.error("%s", err)
        return 2
