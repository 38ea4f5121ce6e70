"""nox sessions of odebench. All run in the current environment (``python=False``).

Install first (once): ``pip install -e ".[test,bench]" -c constraints.txt``; no session
installs anything, and nothing here needs the network.

    nox                          lint + tests
    nox -s tests -- -k solver    pytest (arguments after -- go to pytest)
    nox -s lint                  ruff check odebench tests suites noxfile.py
    nox -s bench                 asv run --quick on HEAD, compare with the last recorded
                                 commit, asv publish (offline HTML), quick studies + report
    nox -s bench -- --full       the same with full asv sampling and `run all --full`
    nox -s bench_compare -- BASE record BASE (git worktree) and HEAD, fail on regressions >10%

asv.conf.json (plain JSON, no comments): environment_type "existing" benchmarks this interpreter
(odebench installed in it, nothing built or downloaded); launch_method "spawn" keeps peakmem_
honest; project_url/show_commit_url "#" keep the report free of external links;
regressions_thresholds 10% matches `asv compare --factor 1.1`.

asv facts this relies on (see the shared tooling notes): environment_type "existing" needs
``--set-commit-hash`` or it saves nothing; a machine file must exist (fresh HOME in CI);
``ASV_PYTHONPATH`` (not PYTHONPATH) selects the checkout that is measured; ``asv compare``
always exits 0, so the gate reads its table; ``asv run`` exits 2 when a benchmark raises.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PY = sys.executable  # one fixed interpreter path: asv names its environment after it
ASV = (PY, "-m", "asv")
MACHINE = "local"
FACTOR = "1.1"  # a change beyond 10% is flagged by asv compare
OVER = f"{float(FACTOR) - 1:.0%}"  # "10%"
RESULTS_DIR = ROOT / ".asv" / "results" / MACHINE  # results_dir in asv.conf.json
DIRTY_DIR = ROOT / ".asv" / "dirty"  # <commit>.txt: that commit's results came from a dirty tree
WORKTREES = ROOT / ".asv" / "worktrees"
HTML_DIR = "reports/asv"  # html_dir in asv.conf.json
VENDOR_DIR = "vendor/asv"
COMPARE_MD = ROOT / "reports" / "asv_compare.md"
QUICK_REPORT = "reports/quick"  # quick studies and their report (git-ignored)
# paths the bench session itself writes: they do not make the measured code dirty
GENERATED_PREFIXES = ("reports/",)

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "none"


# --------------------------------------------------------------------------- plain sessions


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """pytest; arguments after -- go to pytest."""
    session.run(PY, "-m", "pytest", *session.posargs)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff check."""
    session.run("ruff", "check", "odebench", "tests", "suites", "noxfile.py", *session.posargs)


# --------------------------------------------------------------------------- helpers


def _git(*args: str, check: bool = True) -> str:
    """A read-only git query in the repository; stdout stripped."""
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _rev(session: nox.Session, name: str) -> str:
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    except RuntimeError:
        session.error(
            f"{name!r} is not a commit of this repository (asv records results per commit; "
            "commit first, and use a full clone, not a shallow one)"
        )
        raise  # unreachable: session.error raises


def _describe(commit: str) -> str:
    return _git("log", "-1", "--format=%h %s (%cs)", commit, check=False) or commit[:8]


def _dirty_paths() -> list[str]:
    """`git status --porcelain` entries outside the paths this session generates."""
    out = _git("status", "--porcelain", "--untracked-files=all", check=False)
    paths = []
    for line in out.splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if not path.startswith(GENERATED_PREFIXES):
            paths.append(line)
    return paths


def _warn_dirty(session: nox.Session, commit: str, dirty: list[str]) -> None:
    shown = "\n    ".join(dirty[:20]) + ("\n    ..." if len(dirty) > 20 else "")
    session.warn(
        "\n" + "!" * 78 + "\n"
        f"  DIRTY WORK TREE: the results recorded now are filed under HEAD {commit[:8]},\n"
        "  but they measure uncommitted changes. They are labelled 'dirty' in\n"
        f"  {COMPARE_MD.relative_to(ROOT)} and .asv/dirty/; commit and rerun for honest numbers.\n"
        f"    {shown}\n" + "!" * 78
    )


def _label_results(commit: str, dirty: list[str]) -> None:
    """Remember whether the results just recorded for ``commit`` came from a dirty tree."""
    marker = DIRTY_DIR / f"{commit}.txt"
    if dirty:
        DIRTY_DIR.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        marker.write_text(f"recorded {stamp} from a dirty work tree:\n" + "\n".join(dirty) + "\n")
    elif marker.exists():
        marker.unlink()


def _label(commit: str) -> str:
    dirty = (DIRTY_DIR / f"{commit}.txt").exists()
    return f"{_describe(commit)}" + ("  **[DIRTY: uncommitted changes measured]**" if dirty else "")


def _ensure_machine(session: nox.Session) -> None:
    """asv needs ~/.asv-machine.json with our machine name; CI has a fresh HOME, no stdin."""
    path = Path(os.path.expanduser("~/.asv-machine.json"))
    try:
        known = MACHINE in json.loads(path.read_text())
    except (OSError, ValueError):
        known = False
    if not known:
        session.run(*ASV, "machine", "--yes")
        session.run(*ASV, "machine", "--yes", "--machine", MACHINE)


def _asv_run(session: nox.Session, commit: str, *, checkout: Path, quick: bool, extra: list[str]) -> int:
    """Record ``commit`` measuring the odebench in ``checkout``; returns asv's exit code."""
    cmd = [*ASV, "run", "--python=same", "--machine", MACHINE, "--set-commit-hash", commit]
    cmd += ["--show-stderr"]
    if quick:
        cmd.append("--quick")  # still saves its one-sample results
    cmd += extra
    env = dict(os.environ)
    env["ASV_PYTHONPATH"] = str(checkout)  # asv drops plain PYTHONPATH
    session.log(f"ASV_PYTHONPATH={checkout} " + " ".join(cmd))
    rc = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    if rc == 2:
        session.warn(f"asv run for {commit[:8]}: some benchmarks raised (exit 2); see above")
    elif rc != 0:
        session.error(f"asv run for {commit[:8]} failed with exit code {rc}")
    return rc


def _recorded_commits() -> set[str]:
    commits = set()
    for path in RESULTS_DIR.glob("*.json"):
        if path.name == "machine.json":
            continue
        try:
            commits.add(json.loads(path.read_text())["commit_hash"])
        except (OSError, ValueError, KeyError):
            continue
    return commits


def _previous_recorded(head: str) -> str | None:
    """The nearest ancestor of ``head`` with asv results on this machine."""
    recorded = _recorded_commits()
    for commit in _git("rev-list", "--max-count=1000", head, check=False).splitlines()[1:]:
        if commit in recorded:
            return commit
    return None


def parse_compare(text: str) -> list[dict[str, str]]:
    """Rows of ``asv compare`` tables: mark ('+' slower, '-' faster, '!' failed, 'x' not
    comparable, '' same), before, after, ratio, benchmark."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 5 or cells[0] == "Change" or (len(cells[0]) > 1 and set(cells[0]) == {"-"}):
            continue
        if cells[0] not in ("+", "-", "!", "x", ""):
            continue
        rows.append(
            {
                "mark": cells[0],
                "before": cells[1],
                "after": cells[2],
                "ratio": cells[3],
                "benchmark": cells[-1],
            }
        )
    return rows


def _compare(session: nox.Session, base: str, head: str, title: str, note: str = "") -> list[dict[str, str]]:
    """asv compare BASE HEAD -> reports/asv_compare.md (and stdout); returns the parsed rows."""
    cmd = [*ASV, "compare", "--machine", MACHINE, "--factor", FACTOR, "--split", base, head]
    session.log(" ".join(cmd))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        session.error(f"asv compare failed ({proc.returncode}):\n{proc.stderr}")
    rows = parse_compare(proc.stdout)
    slower = [r for r in rows if r["mark"] == "+"]
    failed = [r for r in rows if r["mark"] == "!"]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# {title}",
        "",
        f"* before (BASE): `{base}` {_label(base)}",
        f"* after (HEAD): `{head}` {_label(head)}",
        f"* machine `{MACHINE}`, factor {FACTOR} (changes beyond {OVER} flagged), {stamp}",
        f"* `{' '.join(['asv', *cmd[3:]])}`",
        *([f"* {note}"] if note else []),
        "",
        f"**{len(slower)} regression(s) over {OVER}**"
        + (f", {len(failed)} benchmark(s) failing after" if failed else ""),
        "",
    ]
    lines += [f"* `{r['benchmark']}`: {r['before']} -> {r['after']} (x{r['ratio']})" for r in slower]
    lines += ["", "## asv compare output", "", proc.stdout.strip()]
    COMPARE_MD.parent.mkdir(parents=True, exist_ok=True)
    COMPARE_MD.write_text("\n".join(lines).rstrip() + "\n")
    print(proc.stdout)
    if proc.stderr.strip():
        print(proc.stderr, file=sys.stderr)
    session.log(f"comparison written to {COMPARE_MD.relative_to(ROOT)}")
    if slower:
        session.warn(
            f"{len(slower)} regression(s) over {OVER} ({base[:8]} -> {head[:8]}):\n"
            + "\n".join(f"  + {r['benchmark']}: {r['before']} -> {r['after']}" for r in slower)
        )
    else:
        session.log(f"no regression over {OVER}")
    return rows


def _publish(session: nox.Session) -> None:
    session.run(*ASV, "publish")
    # make_offline(reports/asv, vendor/asv): local JS/CSS, fails if anything external is left
    session.run(PY, "-m", "odebench.report.asv_html", HTML_DIR, "--vendor", VENDOR_DIR)


def _where_to_look(session: nox.Session) -> None:
    lines = [
        "",
        f"asv results are kept in {RESULTS_DIR.parent.relative_to(ROOT)}/ (one JSON file per "
        "recorded commit; no session removes them, so the next run compares with this one).",
        "Open the asv report over loopback (it loads JSON; file:// does not work):",
        f"  odebench serve --dir {HTML_DIR} --port 8080",
        "    then open http://127.0.0.1:8080/ (regressions: http://127.0.0.1:8080/#regressions)",
    ]
    report = ROOT / QUICK_REPORT / "index.html"
    if report.exists():
        lines.append(f"  odebench report of the quick studies: {report.relative_to(ROOT)} "
                     "(opens from the file system)")
    if COMPARE_MD.exists():
        lines.append(f"  comparison (Markdown, no server needed): {COMPARE_MD.relative_to(ROOT)}")
    lines.append("  screenshots (headless chromium): scripts/screenshot_asv.sh " + HTML_DIR)
    session.log("\n".join(lines))


# --------------------------------------------------------------------------- bench sessions


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Record HEAD with asv, compare with the last recorded commit, publish offline HTML,
    run the quick studies and the report.  `-- --full` for full sampling and the full grid."""
    parser = argparse.ArgumentParser(prog="nox -s bench --")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false", help="default")
    mode.add_argument("--full", dest="full", action="store_true")
    parser.set_defaults(full=False)
    parser.add_argument("-b", "--bench", action="append", default=[], help="asv -b REGEX")
    parser.add_argument(
        "--asv-only", action="store_true", help="skip `odebench run all` and `odebench report`"
    )
    args = parser.parse_args(session.posargs)

    _ensure_machine(session)
    head = _rev(session, "HEAD")
    dirty = _dirty_paths()
    if dirty:
        _warn_dirty(session, head, dirty)

    extra = [x for b in args.bench for x in ("-b", b)]
    rc = _asv_run(session, head, checkout=ROOT, quick=not args.full, extra=extra)
    _label_results(head, dirty)

    prev = _previous_recorded(head)
    if prev is None:
        session.log("no earlier commit has asv results on this machine: nothing to compare")
        COMPARE_MD.parent.mkdir(parents=True, exist_ok=True)
        COMPARE_MD.write_text(
            f"# asv: HEAD {head[:8]}\n\n* HEAD: `{head}` {_label(head)}\n\n"
            f"No ancestor of HEAD has asv results on machine `{MACHINE}` yet: nothing to "
            "compare. The next `nox -s bench` on a later commit compares against this one.\n"
        )
    else:
        _compare(
            session,
            prev,
            head,
            f"asv: {prev[:8]} (last recorded) vs HEAD {head[:8]}",
            note=""
            if args.full
            else "HEAD was recorded with asv --quick (one sample, no statistics): time_ and "
            "peakmem_ changes are indicative only; track_ (NFE, gradient error) are exact. "
            "Use `nox -s bench_compare -- BASE` for a gate.",
        )

    _publish(session)

    if not args.asv_only:
        # the full run regenerates the committed reports/; the quick one goes to reports/quick/
        # serial: on 2 shared cores `--workers 2` did not shorten a quick grid (README)
        size, out = ("--full", "reports") if args.full else ("--quick", QUICK_REPORT)
        # a quick run keeps each commit's rows in a folder of its own, so that its report is one
        # commit's; it may be built from a dirty tree (exploration: the tables list the commit).
        # The full run's report is strict: one clean commit (odebench report refuses others).
        data = f"{out}/data" if args.full else f"{out}/data/{head[:12]}"
        mixed = [] if args.full else ["--allow-mixed"]
        # rows are keyed by commit: this commit's runs are measured, not another commit's reused;
        # exit 1 = some runs recorded as 'error': still build the report, then fail below
        cmd = [PY, "-m", "odebench", "run", "all", size, "--results", data]
        session.log(" ".join(cmd))
        run_rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
        if run_rc not in (0, 1):
            session.error(f"odebench run failed with exit code {run_rc}")
        session.run(PY, "-m", "odebench", "report", "--results", data, "--out", out, *mixed)
        if run_rc == 1:
            session.error("some study runs failed (status 'error' rows, counted above); "
                          "a rerun retries them")

    _where_to_look(session)
    if rc == 2:
        session.error("some asv benchmarks raised at HEAD (asv run exit 2): see the log above")


@nox.session(python=False)
def bench_compare(session: nox.Session) -> None:
    """`nox -s bench_compare -- BASE [--quick] [-b REGEX]`: record BASE (in a git worktree)
    and HEAD, compare, and fail if any benchmark got more than 10% worse."""
    parser = argparse.ArgumentParser(prog="nox -s bench_compare --")
    parser.add_argument("base", help="commit, branch or tag to compare HEAD against")
    parser.add_argument("--quick", action="store_true", help="one sample each (noisy)")
    parser.add_argument("-b", "--bench", action="append", default=[], help="asv -b REGEX")
    args = parser.parse_args(session.posargs)

    _ensure_machine(session)
    base = _rev(session, args.base)
    head = _rev(session, "HEAD")
    if base == head:
        session.error(f"BASE {args.base} is HEAD ({head[:8]}): nothing to compare")
    dirty = _dirty_paths()
    if dirty:
        _warn_dirty(session, head, dirty)
    extra = [x for b in args.bench for x in ("-b", b)]

    worktree = WORKTREES / base[:12]
    if worktree.exists():
        session.run("git", "worktree", "remove", "--force", str(worktree), external=True)
    session.run("git", "worktree", "prune", external=True)
    session.run("git", "worktree", "add", "--detach", str(worktree), base, external=True)
    try:
        # the benchmark suite is HEAD's (suites/); the code measured is BASE's
        _asv_run(session, base, checkout=worktree, quick=args.quick, extra=extra)
        _label_results(base, [])
    finally:
        if worktree.exists():
            session.run("git", "worktree", "remove", "--force", str(worktree), external=True)

    rc_head = _asv_run(session, head, checkout=ROOT, quick=args.quick, extra=extra)
    _label_results(head, dirty)

    rows = _compare(
        session,
        base,
        head,
        f"asv gate: BASE {base[:8]} vs HEAD {head[:8]}",
        note="recorded with asv --quick (one sample each): time_ changes are noisy" if args.quick else "",
    )
    if not rows:
        session.error("asv compare produced no table: were both commits recorded?")
    slower = [r for r in rows if r["mark"] == "+"]
    failed = [r for r in rows if r["mark"] == "!"]
    problems = []
    if slower:
        problems.append(
            f"{len(slower)} benchmark(s) more than {OVER} worse than "
            f"{args.base}: " + ", ".join(r["benchmark"] for r in slower)
        )
    if failed or rc_head == 2:
        problems.append(
            "benchmark(s) failing at HEAD: "
            + (", ".join(r["benchmark"] for r in failed) or "see the asv log")
        )
    if problems:
        session.error("; ".join(problems) + f" (details: {COMPARE_MD.relative_to(ROOT)})")
    session.log(f"gate passed: no benchmark more than {OVER} worse than {args.base}")


@nox.session(python=False)
def microbench(session: nox.Session) -> None:
    """pytest-benchmark micro-benchmarks of the solver core (tests/bench_solvers.py): saves the
    run as JSON under .benchmarks/ and compares it with the previous saved run, if any."""
    store = ROOT / ".benchmarks"
    previous = sorted(store.rglob("*.json")) if store.exists() else []
    compare = ["--benchmark-compare", "--benchmark-compare-fail=mean:25%"] if previous else []
    session.run(PY, "-m", "pytest", "-p", "no:cacheprovider", "tests/bench_solvers.py", "-m", "",
                "--benchmark-enable", "--benchmark-autosave", "--benchmark-min-rounds=20",
                *compare, *session.posargs,
                env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
