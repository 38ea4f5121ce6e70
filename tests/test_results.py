"""The results store: rows, keys, fsync'd appends, repair of a truncated line, resumability."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from odebench import environment as env_module
from odebench.environment import ENVIRONMENT_COLUMNS, Provenance, environment, git_commit
from odebench.errors import InvalidInputError
from odebench.results import COLUMNS, KEY_COLUMNS, STATUSES, ResultsStore, Row, key_of

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_row(**overrides) -> Row:
    values = dict(
        study="unit",
        problem="expdecay",
        backend="odebench",
        method="dopri5",
        gradient="backprop",
        rtol=1e-6,
        atol=1e-8,
        dtype="float64",
        device="cpu",
        sol_error=1.5e-7,
        nfe_forward=44,
        commit=environment()["commit"],  # a key column: what append stamps
    )
    values.update(overrides)
    return Row(**values)


def test_columns_cover_keys_and_environment():
    assert set(KEY_COLUMNS) <= set(COLUMNS)
    assert set(ENVIRONMENT_COLUMNS) <= set(COLUMNS)
    assert len(set(COLUMNS)) == len(COLUMNS)
    assert "timestamp" in COLUMNS and "status" in COLUMNS


def test_row_converts_numpy_and_torch_values():
    row = make_row(
        dtype=torch.float32,
        device=torch.device("cpu"),
        rtol=np.float64(1e-5),
        nfe_forward=np.int64(12),
        sol_error_series=torch.tensor([1e-3, 2e-3], dtype=torch.float64),
        extra={"loss": torch.tensor(0.25)},
    )
    assert row.dtype == "float32" and row.device == "cpu"
    assert type(row.rtol) is float and type(row.nfe_forward) is int
    assert row.sol_error_series == [1e-3, 2e-3]
    assert row.extra == {"loss": 0.25}
    json.dumps(row.to_dict())


@pytest.mark.parametrize(
    "overrides",
    [{"status": "exploded"}, {"study": "../escape"}, {"study": ""}, {"extra": {"f": object()}}],
)
def test_row_rejects_bad_values(overrides):
    with pytest.raises(InvalidInputError):
        make_row(**overrides)


def test_from_dict_rejects_unknown_columns():
    with pytest.raises(InvalidInputError, match="unknown row columns"):
        Row.from_dict({**make_row().to_dict(), "colour": "blue"})


def test_append_fills_environment_and_reads_back(tmp_path):
    store = ResultsStore(tmp_path)
    written = store.append(make_row())
    assert written.timestamp is not None and written.timestamp.endswith("+00:00")
    for name, value in environment().items():
        assert getattr(written, name) == value
    frame = store.rows("unit")
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(frame) == 1
    assert frame.loc[0, "sol_error"] == 1.5e-7
    assert frame.loc[0, "nfe_forward"] == 44
    assert (tmp_path / "unit.jsonl").read_text().count("\n") == 1


def test_append_keeps_explicit_environment(tmp_path):
    row = ResultsStore(tmp_path).append(make_row(commit="abc1234-dirty", timestamp="2024-01-01"))
    assert row.commit == "abc1234-dirty" and row.timestamp == "2024-01-01"


def test_append_accepts_a_mapping(tmp_path):
    store = ResultsStore(tmp_path)
    store.append({**make_row().to_dict(), "problem": "vdp"})
    assert store.rows()["problem"].tolist() == ["vdp"]


def test_keys_and_has(tmp_path):
    store = ResultsStore(tmp_path)
    row = make_row(params={"b": 2, "a": 1})
    assert not store.has(key_of(row))
    store.append(row)
    assert store.has(key_of(row))
    same = make_row(params={"a": 1, "b": 2}, sol_error=9.9, extra={"note": "rerun"})
    assert key_of(same) == key_of(row)  # measurements and dict order do not matter
    assert not store.has(key_of(make_row(rtol=1e-7)))
    # a fresh store (a rerun) sees the same keys, from the file; so does a dict row
    rerun = ResultsStore(tmp_path)
    assert rerun.has(key_of(row))
    assert key_of(rerun.rows().to_dict("records")[0]) == key_of(row)
    assert key_of(json.loads((tmp_path / "unit.jsonl").read_text())) == key_of(row)


def test_has_sees_rows_appended_by_another_store(tmp_path):
    reader, writer = ResultsStore(tmp_path), ResultsStore(tmp_path)
    assert not reader.has(key_of(make_row()))
    writer.append(make_row())
    assert reader.has(key_of(make_row()))


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "ok"])
def test_stopped_runs_are_rows(tmp_path, status):
    store = ResultsStore(tmp_path)
    store.append(make_row(status=status, message="stopped at t=3.2, h=1e-14", sol_error=None))
    frame = store.rows("unit")
    assert frame["status"].tolist() == [status]
    assert store.has(key_of(make_row()))


def test_nonfinite_values_round_trip(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(make_row(sol_error=math.inf, grad_error=math.nan))
    frame = store.rows()
    assert math.isinf(frame.loc[0, "sol_error"]) and math.isnan(frame.loc[0, "grad_error"])


def test_rows_of_all_studies_and_of_none(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.rows().empty and list(store.rows().columns) == list(COLUMNS)
    store.append(make_row(study="a"))
    store.append(make_row(study="b"))
    assert store.studies() == ["a", "b"]
    assert sorted(store.rows()["study"]) == ["a", "b"]
    assert store.rows("b")["study"].tolist() == ["b"]
    assert store.rows("missing").empty


def test_truncated_last_line_is_ignored_then_repaired(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(make_row(problem="p0"))
    store.append(make_row(problem="p1"))
    path = tmp_path / "unit.jsonl"
    whole = path.read_bytes()
    line = (json.dumps(make_row(problem="p2").to_dict()) + "\n").encode()
    path.write_bytes(whole + line[: len(line) // 2])  # killed mid-write

    with pytest.warns(UserWarning, match="truncated last line"):
        assert ResultsStore(tmp_path).rows()["problem"].tolist() == ["p0", "p1"]
    with pytest.warns(UserWarning, match="truncated last line"):
        assert not ResultsStore(tmp_path).has(key_of(make_row(problem="p2")))

    ResultsStore(tmp_path).append(make_row(problem="p3"))
    data = path.read_bytes()
    assert data.startswith(whole) and data.endswith(b"\n")
    lines = data.decode().splitlines()
    assert [json.loads(text)["problem"] for text in lines] == ["p0", "p1", "p3"]


def test_repair_of_a_file_holding_only_a_partial_line(tmp_path):
    path = tmp_path / "unit.jsonl"
    path.write_bytes(b'{"study": "unit", "prob')
    store = ResultsStore(tmp_path)
    with pytest.warns(UserWarning, match="truncated last line"):
        assert store.rows().empty
    store.append(make_row())
    assert len(path.read_text().splitlines()) == 1
    assert store.rows()["problem"].tolist() == ["expdecay"]


def test_corrupt_complete_line_is_an_error(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(make_row())
    with open(tmp_path / "unit.jsonl", "a") as handle:
        handle.write("not json\n")
    store.append(make_row(problem="vdp"))
    with pytest.raises(ValueError, match="unit.jsonl:2"):
        store.rows()


_WRITER = textwrap.dedent(
    """
    import sys, time
    from odebench.results import ResultsStore, Row, key_of

    store = ResultsStore(sys.argv[1])
    n, delay = int(sys.argv[2]), float(sys.argv[3])
    print("ready", flush=True)
    for i in range(n):
        row = Row(study="resume", problem=f"p{i % 4}", backend="odebench", method="dopri5",
                  rtol=10.0 ** -(3 + i // 4), atol=1e-12, dtype="float64", device="cpu",
                  sol_error=1e-3 * i, commit="feed123", timestamp="2024-01-01T00:00:00+00:00")
        if store.has(key_of(row)):
            continue
        time.sleep(delay)
        store.append(row)
        print(i, flush=True)
    """
)


def _writer(directory: Path, n: int, delay: float) -> subprocess.Popen:
    environ = dict(os.environ)
    paths = [str(REPO_ROOT), environ.get("PYTHONPATH", "")]
    environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(directory), str(n), str(delay)],
        stdout=subprocess.PIPE,
        text=True,
        env=environ,
    )


def test_killed_run_resumes_without_duplicates(tmp_path):
    n = 24
    writer = _writer(tmp_path, n, delay=0.05)
    assert writer.stdout.readline().strip() == "ready"
    done = [int(writer.stdout.readline()) for _ in range(6)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    path = tmp_path / "resume.jsonl"
    before = path.read_text().splitlines()
    assert done == list(range(6)) and 6 <= len(before) < n

    # the worst a kill can do: the row in flight is half written
    with open(path, "ab") as handle:
        handle.write(b'{"study":"resume","problem":"p2","back')

    rerun = _writer(tmp_path, n, delay=0.0)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0
    resumed = [int(text) for text in out.split()[1:]]
    assert resumed == list(range(len(before), n))  # skipped exactly the recorded rows

    data = path.read_bytes()
    assert data.endswith(b"\n")
    records = [json.loads(text) for text in data.decode().splitlines()]  # no corrupt line
    keys = [key_of(record) for record in records]
    assert len(keys) == n and len(set(keys)) == n
    assert sorted(r["sol_error"] for r in records) == pytest.approx([1e-3 * i for i in range(n)])
    assert ResultsStore(tmp_path).rows("resume")["problem"].value_counts().to_dict() == {
        f"p{k}": n // 4 for k in range(4)
    }


def test_environment_is_cached_and_complete():
    first = environment()
    assert tuple(first) == ENVIRONMENT_COLUMNS
    first["torch_version"] = "mutated"
    assert environment()["torch_version"] == torch.__version__
    assert environment()["numpy_version"] == np.__version__
    assert environment()["cores"] == os.cpu_count()


def test_git_commit_tolerates_no_repository_and_no_git(tmp_path, monkeypatch):
    assert git_commit(tmp_path) is None

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(env_module.subprocess, "run", no_git)
    assert git_commit(REPO_ROOT) is None


def test_git_commit_marks_a_dirty_tree(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "f.txt").write_text("one")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    clean = git_commit(tmp_path)
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "f.txt").write_text("two")
    assert git_commit(tmp_path) == f"{clean}-dirty"


def test_provenance_summarises_rows(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(make_row(commit="aaa1111", timestamp="2024-03-01T10:00:00+00:00"))
    store.append(make_row(problem="vdp", commit="bbb2222", timestamp="2024-03-02T10:00:00+00:00"))
    provenance = Provenance.from_rows(store.rows())
    assert provenance.commit == "aaa1111, bbb2222"
    assert provenance.date == "2024-03-01 to 2024-03-02"
    assert provenance.torch == torch.__version__
    assert provenance.rows == 2
    assert "aaa1111" in provenance.footer() and "2024-03-01" in provenance.line()


# --------------------------------------------------------------------------- store safety


def _fake_study(fail: set[str] | None = None, name: str = "unit", n: int = 3):
    """A study of ``n`` instant points p0.. whose execute raises for the problems in ``fail``."""
    from odebench.studies.base import Study

    fail = fail if fail is not None else set()

    def grid(settings):
        return [make_row(study=name, problem=f"p{i}", commit=None, sol_error=None,
                         nfe_forward=None) for i in range(n)]

    def execute(row, settings):
        if row.problem in fail:
            raise RuntimeError(f"{row.problem} crashed")
        return dataclasses.replace(row, sol_error=1e-6, nfe_forward=10)

    return Study(name, "a test study", grid, execute)


@pytest.mark.parametrize("threads", [0, -1, True, 1.5])
def test_settings_are_validated_before_any_run(threads):
    from odebench.studies.base import Settings

    with pytest.raises(InvalidInputError, match="threads"):
        Settings(threads=threads)


def test_run_with_threads_0_fails_before_writing(tmp_path, caplog):
    from odebench.cli import main

    assert main(["run", "overhead", "--threads", "0", "--results", str(tmp_path),
                 "--no-progress"]) == 2
    assert "threads must be a whole number >= 1" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_rerun_retries_error_rows_unless_told_not_to(tmp_path):
    from odebench.studies.base import Settings, run_study

    crashed = run_study(_fake_study(fail={"p1"}), Settings(), tmp_path, progress=False)
    assert (crashed.written, crashed.skipped, crashed.failed) == (3, 0, 1)
    kept = run_study(_fake_study(), Settings(), tmp_path, progress=False, retry=False)
    assert (kept.written, kept.skipped, kept.failed) == (0, 3, 0)
    retried = run_study(_fake_study(), Settings(), tmp_path, progress=False)
    assert (retried.written, retried.skipped, retried.failed) == (1, 2, 0)
    with pytest.warns(UserWarning, match="1 retried error"):
        frame = ResultsStore(tmp_path).rows("unit")
    assert sorted(frame["status"]) == ["ok", "ok", "ok"]


def test_run_exits_non_zero_with_a_count_when_runs_failed(tmp_path, monkeypatch, caplog):
    from odebench import studies
    from odebench.cli import main

    monkeypatch.setattr(studies, "get", lambda name: _fake_study(fail={"p0", "p2"}))
    assert main(["run", "overhead", "--results", str(tmp_path), "--no-progress"]) == 1
    assert "2 run(s) failed with status 'error'" in caplog.text


def test_key_holds_commit_mode_and_threads():
    from odebench.studies import get
    from odebench.studies.base import Settings, grid_points

    assert {"commit", "mode", "threads"} <= set(KEY_COLUMNS)
    assert key_of(make_row(commit="aaa1111")) != key_of(make_row(commit="bbb2222"))
    for name in ("overhead", "memory_scaling"):  # quick rows measure less than full ones
        quick = {key_of(p) for p in grid_points(get(name), Settings(mode="quick"))}
        full = {key_of(p) for p in grid_points(get(name), Settings(mode="full"))}
        assert quick and full and not quick & full
    one = {key_of(p) for p in grid_points(get("overhead"), Settings(threads=1))}
    two = {key_of(p) for p in grid_points(get("overhead"), Settings(threads=2))}
    assert not one & two


def test_another_commit_measures_again_and_the_same_commit_resumes(tmp_path, monkeypatch):
    from odebench.studies import base

    assert base.run_study(_fake_study(), base.Settings(), tmp_path, progress=False).written == 3
    assert base.run_study(_fake_study(), base.Settings(), tmp_path, progress=False).written == 0
    later = {**environment(), "commit": "fffffff"}
    monkeypatch.setattr(base, "environment", lambda: later)
    assert base.run_study(_fake_study(), base.Settings(), tmp_path, progress=False).written == 3
    with pytest.warns(UserWarning, match="3 older commit"):
        frame = ResultsStore(tmp_path).rows("unit")
    assert frame["commit"].tolist() == ["fffffff"] * 3


def test_rows_drop_duplicates_with_a_warning(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(make_row(sol_error=1.0))
    store.append(make_row(problem="vdp"))
    store.append(make_row(sol_error=2.0))  # a second process ran the same point
    assert len(list(store.records("unit"))) == 3
    with pytest.warns(UserWarning, match="dropped 1 \\(1 duplicate\\)"):
        frame = store.rows()
    assert frame["problem"].tolist() == ["vdp", "expdecay"]
    assert frame["sol_error"].tolist()[1] == 2.0


_LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from odebench.environment import environment
    from odebench.results import ResultsStore, Row

    store = ResultsStore(sys.argv[1])
    with store.lock("unit"):
        print("held", flush=True)
        time.sleep(1.0)
        store.append(Row(study="unit", problem="p0", backend="odebench", method="dopri5",
                         gradient="backprop", rtol=1e-6, atol=1e-8, dtype="float64",
                         device="cpu", mode="quick", threads=1, commit=environment()["commit"]))
    """
)


def test_a_second_run_waits_for_the_first_and_skips_its_rows(tmp_path, caplog):
    from odebench.studies.base import Settings, run_study

    environ = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT),
                                                            os.environ.get("PYTHONPATH", "")]))
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, env=environ)
    try:
        assert holder.stdout.readline().strip() == "held"
        summary = run_study(_fake_study(), Settings(), tmp_path, progress=False)
    finally:
        holder.wait(timeout=60)
        holder.stdout.close()
    assert holder.returncode == 0
    assert "being written by another odebench run (pid" in caplog.text
    assert (summary.written, summary.skipped) == (2, 1)  # the first run's row is not redone
    keys = [key_of(r) for r in ResultsStore(tmp_path).records("unit")]
    assert len(keys) == 3 == len(set(keys))


@pytest.mark.parametrize("bad", [b"not json", b'{"colour": "blue"}', b"[1, 2]", b"17"])
def test_a_bad_complete_line_names_file_and_line_and_repair_moves_it(tmp_path, bad):
    store = ResultsStore(tmp_path)
    store.append(make_row())
    with open(tmp_path / "unit.jsonl", "ab") as handle:
        handle.write(bad + b"\n")
    store.append(make_row(problem="vdp"))
    with pytest.raises(InvalidInputError, match=r"unit\.jsonl:2: corrupt results line"):
        store.rows()
    assert store.repair("unit") == 1
    assert (tmp_path / "unit.jsonl.bad").read_bytes() == bad + b"\n"
    assert store.rows()["problem"].tolist() == ["expdecay", "vdp"]


def test_report_gives_a_one_line_error_for_a_corrupt_line(tmp_path, capsys, caplog):
    from odebench.cli import main

    store = ResultsStore(tmp_path / "data")
    store.append(make_row())
    with open(tmp_path / "data" / "unit.jsonl", "ab") as handle:
        handle.write(b"{broken\n")
    store.append(make_row(problem="vdp"))
    out = tmp_path / "out"
    assert main(["report", "--results", str(tmp_path / "data"), "--out", str(out)]) == 2
    assert "unit.jsonl:2: corrupt results line" in caplog.text and "--repair" in caplog.text
    assert "Traceback" not in capsys.readouterr().err and not out.exists()


def test_truncated_last_line_warns(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(make_row())
    with open(tmp_path / "unit.jsonl", "ab") as handle:
        handle.write(b'{"study":"unit","prob')
    with pytest.warns(UserWarning, match="skipped a truncated last line"):
        assert len(store.rows()) == 1


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_report_on_a_missing_or_empty_folder_is_an_error(tmp_path, folder, caplog):
    from odebench.cli import main

    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert main(["report", "--results", str(tmp_path / folder), "--out", str(out)]) == 2
    assert str(tmp_path / folder) in caplog.text and not out.exists()


def test_cache_files_respect_the_umask(tmp_path, monkeypatch):
    from odebench.reference import cache

    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    previous = os.umask(0o022)
    try:
        cache.save("solution", "p", "0" * 64, {"a": np.zeros(2)})
    finally:
        os.umask(previous)
    (path,) = tmp_path.glob("solution-p-*.npz")
    assert path.stat().st_mode & 0o777 == 0o644
