"""Wall seconds for HIRES to reach 6 and 8 significant correct digits (scd at the end time, as
the stiff study scores it): odebench's stiff methods against SciPy's BDF, LSODA and Radau, side
by side in one run (best of 3 per tolerance, one thread), interpolated in log(wall) over scd
between the bracketing tolerances.

    PYTHONPATH=. python scripts/stiff_wall.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

import odebench
from odebench import problems
from odebench.backends.scipy_backend import integrate as scipy_integrate
from odebench.measure.errors import scd
from odebench.reference.bridge import TorchSystem
from odebench.studies.stiff import atol_for

RTOLS = [10.0 ** -k for k in range(3, 12)]


def wall_at(points: list[tuple[float, float]], digits: float) -> float:
    """Interpolated wall at ``digits`` from (scd, wall) points sorted by tolerance; nan when
    no pair of tolerances brackets it."""
    for (d0, w0), (d1, w1) in zip(points, points[1:]):
        if d0 <= digits <= d1 and d1 > d0:
            return float(np.exp(np.interp(digits, [d0, d1], [np.log(w0), np.log(w1)])))
    return float("nan")


def main() -> None:
    torch.set_num_threads(1)
    pr = problems.get("hires")
    ref = pr.reference.y.numpy()
    t = torch.tensor([float(pr.t_eval[0]), pr.reference.t], dtype=torch.float64)
    func = pr.func()
    system = TorchSystem(pr)
    results = {}
    for backend, method in [("odebench", m) for m in odebench.STIFF_METHODS] + [
            ("scipy", m) for m in ("BDF", "LSODA", "Radau")]:
        points = []
        for rtol in RTOLS:
            if method == "rosenbrock23" and rtol < 1e-7:
                break  # second order: past 1e-7 it takes more than 1e4 steps
            atol = atol_for("hires", rtol)
            best, y = float("inf"), None
            for _ in range(3):
                start = time.perf_counter()
                if backend == "odebench":
                    with torch.no_grad():
                        y = odebench.odeint(func, pr.y0, t, method=method, rtol=rtol,
                                            atol=atol)[-1].numpy()
                else:
                    y = scipy_integrate(method, system, t.numpy(), pr.y0.numpy(), rtol, atol,
                                        {}).ys[-1]
                best = min(best, time.perf_counter() - start)
            points.append((scd(y, ref, pr.atol), best))
        results[(backend, method)] = points
        row = "  ".join(f"{d:5.2f}/{w:6.3f}s" for d, w in points)
        print(f"{backend:8s} {method:12s} {row}")
    print("wall [s] to reach  6 digits   8 digits")
    for (backend, method), points in results.items():
        print(f"{backend:8s} {method:12s} {wall_at(points, 6):8.3f}  {wall_at(points, 8):8.3f}")


if __name__ == "__main__":
    main()
