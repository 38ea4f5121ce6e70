"""Per-step CPU time (process_time: less sensitive to a shared machine than wall time) of a forward dopri5 / rodas5p solve on a small MLP field (no graph), for a
before/after comparison of the solver core: run once with PYTHONPATH at each checkout.

    PYTHONPATH=<checkout> python scripts/loop_overhead.py
"""

from __future__ import annotations

import time

import torch

import odebench


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    net = net.double()
    y0 = torch.randn(16, 4, dtype=torch.float64)
    t = torch.linspace(0.0, 30.0, 6, dtype=torch.float64)
    for method, rtol in (("dopri5", 1e-9), ("tsit5", 1e-9), ("rk4", None), ("rodas5p", 1e-7)):
        opts = {"step_size": 0.01} if rtol is None else None
        yy = y0[:2] if method == "rodas5p" else y0
        with torch.no_grad():
            best = float("inf")
            for _ in range(9):
                start = time.process_time()
                sol = odebench.solve(lambda _t, y: net(y), yy, t, method=method,
                                     rtol=rtol or 1e-7, atol=1e-9, options=opts)
                best = min(best, time.process_time() - start)
        steps = sol.stats.n_steps + sol.stats.n_rejected
        print(f"{method:8s} steps {steps:5d} nfe {sol.stats.nfe:6d} "
              f"best {best * 1e3:8.2f} ms  per step {best / steps * 1e6:7.1f} us")


if __name__ == "__main__":
    main()
