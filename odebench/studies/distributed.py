"""Study grids on dask.distributed: one task per grid point, this process the only writer.

``cluster_client(workers=N)`` starts a ``LocalCluster(n_workers=N, threads_per_worker=1,
processes=True)`` whose worker processes get ``WORKER_ENV`` before they import torch (one BLAS
thread, the memory-measurement malloc settings); ``cluster_client(scheduler=ADDRESS)`` connects
to an existing cluster (a ``dask_jobqueue`` one, say); with neither it yields ``None`` and the
runner stays in-process. ``dask[distributed]`` is the optional extra ``odebench[distributed]``.

``run_on_cluster`` submits ``run_point(study, point, settings)`` for every point and yields the
finished rows as they complete (``as_completed``), so the caller appends them one by one: a
killed client loses only the rows in flight. A task that raises is a status row (as in the
serial runner); a task whose worker died (out of memory, killed) is retried once by the
scheduler and then becomes an ``error`` row naming the reason. Rows carry the worker's host
(``hostname`` and the other environment columns are stamped on the worker).

Wall-clock studies (``WALL_CLOCK_STUDIES``) hold a cluster-wide ``distributed.Lock`` named for
the worker's host while they run, so one of their tasks runs per machine at a time; their rows
have ``timing_exclusive = True``, the other studies' rows ``False``.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from odebench.errors import InvalidInputError
from odebench.results import Row
from odebench.studies.base import WALL_CLOCK_STUDIES, Settings, Study, execute_point, failed_row

log = logging.getLogger("odebench.studies")

EXTRA = "distributed"
#: Environment of every worker process of a cluster started here, set before torch is imported.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
#: How often a task may lose its worker before it is recorded as an ``error`` row.
ALLOWED_FAILURES = 1


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise InvalidInputError(
            f"--workers and --scheduler need dask.distributed: pip install 'odebench[{EXTRA}]' "
            f"({exc})") from exc
    return distributed


@contextmanager
def cluster_client(workers: int | None = None, scheduler: str | None = None,
                   env: dict[str, str] | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on a new local cluster of ``workers`` processes, or on the
    cluster at ``scheduler``; ``None`` when neither is given. ``env`` adds worker variables."""
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise InvalidInputError("give --workers (a local cluster) or --scheduler (an existing "
                                "one), not both")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise InvalidInputError(f"--workers must be >= 1, got {workers!r}")
    distributed = _distributed()
    import dask

    if not log.isEnabledFor(logging.DEBUG):  # set after the import, which sets its own levels
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            log.info("connected to the dask cluster at %s (dashboard %s)", scheduler,
                     client.dashboard_link)
            yield client
        return
    # saturation 1: a worker holds only the task it runs, so a worker's death counts against
    # that task alone (with the default 1.1 a queued bystander would be marked too)
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            env={**WORKER_ENV, **(env or {})})
    with cluster, distributed.Client(cluster) as client:
        log.info("started a local dask cluster of %d workers; dashboard %s", workers,
                 client.dashboard_link)
        yield client


def _pin_threads() -> None:
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def run_point(study: Study, point: Row, settings: Settings) -> Row:
    """The task of one grid point, run on a worker: the finished row (a status row if the run
    raised), stamped with the worker's environment (host, CPU, versions)."""
    _pin_threads()
    if study.name not in WALL_CLOCK_STUDIES:
        row = execute_point(study, point, settings)
        return dataclasses.replace(row, timing_exclusive=False).stamped()
    from distributed import Lock

    with Lock(f"odebench-timing-{socket.gethostname()}"):
        row = execute_point(study, point, settings)
    return dataclasses.replace(row, timing_exclusive=True).stamped()


def run_on_cluster(client: Any, study: Study, points: list[Row], settings: Settings,
                   advance: Callable[[Row | None, Row | None], None]) -> Iterator[Row]:
    """Run ``points`` as tasks on ``client``'s cluster; yield each finished row on arrival."""
    distributed = _distributed()
    tag = uuid.uuid4().hex[:8]
    futures = {client.submit(run_point, study, point, settings, pure=False,
                             key=f"{study.name}-{tag}-{index}"): point
               for index, point in enumerate(points)}
    try:
        for future in distributed.as_completed(futures):
            point = futures[future]
            try:
                row = future.result()
            except distributed.KilledWorker as err:
                row = failed_row(point, "error", "KilledWorker: the worker running it died "
                                 f"again after a retry (out of memory or killed): {err}")
            except Exception as err:  # raised outside the run itself (e.g. unpicklable)
                row = failed_row(point, "error", f"{type(err).__name__}: {err}")
            advance(row, point)
            yield row
    finally:
        client.cancel(list(futures))
