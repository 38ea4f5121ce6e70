"""Study grids on a dask LocalCluster: same rows as the serial runner, the client the only writer,
kill-and-resume, worker death, and two workers racing on an empty reference cache.

One 2-worker cluster (``odebench.studies.distributed.cluster_client``, as ``--workers 2``) is
shared by the tests of this module; tests/ is on the workers' PYTHONPATH for the task helpers.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from odebench.errors import InvalidInputError
from odebench.results import ResultsStore, key_of
from odebench.studies.base import Settings, run_study
from odebench.studies.distributed import WORKER_ENV, cluster_client

distributed = pytest.importorskip("distributed")
import distributed_tasks as tasks  # noqa: E402  (tests/ is on sys.path under pytest)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PYTHONPATH = os.pathsep.join(p for p in [str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]
                             if p)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """A folder the workers' task helpers log into (``$ODEBENCH_TEST_DIR`` on the workers)."""
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="module")
def client(logs):
    env = {"PYTHONPATH": PYTHONPATH, "ODEBENCH_TEST_DIR": str(logs)}
    with cluster_client(workers=2, env=env) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


def _same_measurements(serial, parallel) -> None:
    columns = ["nfe_forward", "nfe_backward", "steps", "rejected", "sol_error", "grad_error",
               "status", "message", "mode", "threads", "commit"]
    by_key = {key_of(r): r for r in serial.to_dict("records")}
    assert len(by_key) == len(parallel) == len(serial)
    for row in parallel.to_dict("records"):
        twin = by_key[key_of(row)]
        for name in columns:
            a, b = row[name], twin[name]
            assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), name


@pytest.mark.parametrize("name, problem, exclusive", [("gradient_accuracy", "mlp", False),
                                                       ("work_precision", None, True)])
def test_a_grid_on_the_cluster_gives_the_serial_rows(client, tmp_path, name, problem, exclusive):
    study = tasks.subset_study(name, problem)
    serial = run_study(study, Settings(), tmp_path / "serial", progress=False)
    parallel = run_study(study, Settings(), tmp_path / "cluster", progress=False, client=client)
    assert (serial.written, parallel.written) == (tasks.SUBSET, tasks.SUBSET)
    rows = ResultsStore(tmp_path / "cluster").rows(name)
    _same_measurements(ResultsStore(tmp_path / "serial").rows(name), rows)
    workers = {info["host"] for info in client.scheduler_info()["workers"].values()}
    assert set(rows["hostname"]) <= {os.uname().nodename} and workers
    assert rows["timing_exclusive"].tolist() == [exclusive] * tasks.SUBSET


def test_workers_get_the_measurement_environment(client):
    seen = client.run(lambda: {name: os.environ.get(name) for name in WORKER_ENV})
    assert list(seen.values()) == [WORKER_ENV] * 2


_CLIENT = textwrap.dedent(
    """
    import sys
    from distributed import Client
    import distributed_tasks as tasks
    from odebench.studies.base import Settings, run_study

    with Client(sys.argv[2]) as client:
        run_study(tasks.SLOW, Settings(), sys.argv[1], progress=False, client=client)
    """
)


def test_a_killed_client_loses_only_rows_in_flight(client, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _CLIENT, str(tmp_path), client.scheduler.address],
                            env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    path = tmp_path / "slow.jsonl"
    deadline = time.monotonic() + 60
    while not (path.exists() and len(path.read_bytes().splitlines()) >= 3):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = len(path.read_bytes().splitlines())
    assert 3 <= before < 12
    resumed = run_study(tasks.SLOW, Settings(), tmp_path, progress=False, client=client)
    assert (resumed.written, resumed.skipped) == (12 - before, before)
    keys = [key_of(r) for r in ResultsStore(tmp_path).records("slow")]
    assert len(keys) == 12 == len(set(keys))


def test_two_workers_racing_on_an_empty_cache_compute_a_reference_once(client, tmp_path):
    log = tmp_path / "computations.log"
    start = time.time() + 1.0
    futures = [client.submit(tasks.race_reference, str(tmp_path / "cache"), str(log), start,
                             workers=[worker], pure=False)
               for worker in client.scheduler_info()["workers"]]
    (pid_a, ys_a), (pid_b, ys_b) = client.gather(futures)
    assert pid_a != pid_b and ys_a == ys_b
    assert len(log.read_text().splitlines()) == 1
    assert len(list((tmp_path / "cache").glob("solution-*.npz"))) == 1
    assert not list((tmp_path / "cache").glob("*.lock"))


def test_workers_without_the_extra_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(InvalidInputError, match=r"odebench\[distributed\]"):
        with cluster_client(workers=2):
            pass


def test_wall_clock_tasks_run_one_at_a_time_per_machine(client, tmp_path, logs):
    run_study(tasks.TIMED, Settings(), tmp_path, progress=False, client=client)
    spans = sorted(tuple(map(float, line.split())) for line in
                   (logs / "timed.log").read_text().splitlines())
    assert len(spans) == 4
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))  # no overlap
    assert ResultsStore(tmp_path).rows("overhead")["timing_exclusive"].tolist() == [True] * 4


def test_a_raising_task_is_a_row_and_a_dying_worker_an_error_row(client, tmp_path, logs):
    summary = run_study(tasks.CRASH, Settings(), tmp_path, progress=False, client=client)
    assert (summary.written, summary.failed) == (3, 2)
    rows = ResultsStore(tmp_path).rows("crash").set_index("problem")
    assert rows.loc["ok", "status"] == "ok"
    assert rows.loc["raises", "status"] == "error"
    assert rows.loc["raises", "message"] == "ValueError: a run that raises"
    assert rows.loc["boom", "status"] == "error"
    assert "KilledWorker" in rows.loc["boom", "message"]
    assert len((logs / "deaths.log").read_text().splitlines()) == 2  # tried, retried once, then recorded
