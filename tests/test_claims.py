"""The claims' verdicts come from the rows: synthetic rows flip each one."""

from __future__ import annotations

import pandas as pd

from odebench.report.claims import (
    CONFIRMED,
    NOT_MEASURED,
    PARTLY,
    REFUTED,
    TEST_ERROR_CHANGE_MAX,
    evaluate_claims,
    to_markdown,
    write_claims,
)
from odebench.results import Row

STAMP = "2024-05-01T12:00:00+00:00"


def row(study: str, **values) -> dict:
    defaults = dict(problem="p", backend="odebench", method="dopri5", rtol=1e-6, atol=1e-8,
                    dtype="float64", device="cpu", timestamp=STAMP)
    return Row(study=study, **{**defaults, **values}).to_dict()


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def claim(rows: pd.DataFrame, key: str):
    return next(c for c in evaluate_claims(rows) if c.key == key)


def part(rows: pd.DataFrame, key: str, name: str):
    return next(p for p in claim(rows, key).parts if p.name == name)


def classifier(ode_error: float, ode_params: int = 40_000) -> list[dict]:
    rows = []
    for seed in (0, 1, 2):
        for model, error, n_params in (("odenet", ode_error, ode_params),
                                       ("resnet", 0.02, 100_000)):
            rows.append(row("models", problem="digits", model=model, gradient="backprop",
                            params={"seed": seed},
                            extra={"test_error": error, "n_params": n_params, "n_test": 360}))
    return rows


def memory(backsolve_grows: bool) -> list[dict]:
    return [row("memory_scaling", problem="mlp", gradient=g, T=T, width=16,
                saved_bytes=int(1000 * T) if g == "backprop" or backsolve_grows else 500,
                grad_error=1e-6 if g == "backprop" else 1e-8)
            for T in (1.0, 2.0, 5.0) for g in ("backprop", "backsolve")]


def test_no_rows_means_not_measured():
    claims = evaluate_claims(pd.DataFrame())
    assert [c.key for c in claims] == list("abcdefg")
    for c in claims:
        assert c.verdict == NOT_MEASURED
        assert all(p.verdict == NOT_MEASURED and p.evidence for p in c.parts)


def test_accuracy_verdict_follows_the_error():
    good = frame(*classifier(0.02), *memory(backsolve_grows=False))
    assert claim(good, "a").verdict == CONFIRMED
    assert "2.00%" in part(good, "a", "test error").evidence
    assert "360 test images" in claim(good, "a").data
    worse = frame(*classifier(0.10), *memory(backsolve_grows=False))
    assert part(worse, "a", "test error").verdict == REFUTED
    assert "10.00%" in part(worse, "a", "test error").evidence
    assert claim(worse, "a").verdict == PARTLY
    everything_wrong = frame(*classifier(0.10, ode_params=90_000), *memory(backsolve_grows=True))
    assert claim(everything_wrong, "a").verdict == REFUTED


def test_backward_nfe_band():
    def runs(ratio: float) -> pd.DataFrame:
        return frame(*[row("models", model=m, gradient="backsolve", nfe_forward=100,
                           nfe_backward=int(100 * ratio),
                           extra={"nfe_backward_over_forward": ratio}) for m in ("a", "b")])

    assert part(runs(0.5), "b", "training").verdict == CONFIRMED
    assert part(runs(1.4), "b", "training").verdict == REFUTED
    assert "1.4" in part(runs(1.4), "b", "training").evidence
    assert part(runs(0.5), "b", "benchmarks").verdict == NOT_MEASURED


def test_backprop_cost_parts_are_separate():
    rows = frame(*memory(backsolve_grows=False))
    assert part(rows, "c", "memory").verdict == CONFIRMED
    assert part(rows, "c", "numerical error").verdict == CONFIRMED
    flipped = rows.assign(grad_error=[1e-9 if g == "backprop" else 1e-5 for g in rows.gradient])
    assert part(flipped, "c", "numerical error").verdict == REFUTED
    assert part(flipped, "c", "memory").verdict == CONFIRMED
    assert claim(flipped, "c").verdict == PARTLY


def lorenz(backsolve_error: float, stop_at: float | None) -> pd.DataFrame:
    rows = []
    for T in (1.0, 2.0, 3.0):
        for gradient in ("backprop", "backsolve"):
            stopped = gradient == "backsolve" and stop_at is not None and T >= stop_at
            error = backsolve_error * T if gradient == "backsolve" else 1e-8
            rows.append(row("lorenz_drift", problem="lorenz", gradient=gradient, T=T,
                            grad_error=None if stopped else error,
                            status="max_steps" if stopped else "ok"))
    return frame(*rows)


def test_backsolve_drift():
    drifting = lorenz(1e-3, stop_at=3.0)
    assert claim(drifting, "d").verdict == CONFIRMED
    evidence = part(drifting, "d", "drift").evidence
    assert "passes 0.001 at T 2" in evidence and "stops at T 3 (max_steps)" in evidence
    assert claim(lorenz(1e-8, stop_at=None), "d").verdict == REFUTED


def test_nfe_growth():
    def runs(last: float) -> pd.DataFrame:
        extra = {"nfe_growth_window": 5, "nfe_forward_first": 20.0, "nfe_forward_last": last,
                 "nfe_backward_first": 10.0, "nfe_backward_last": 15.0}
        return frame(row("models", model="cnf", gradient="backprop", extra=extra))

    grew = part(runs(40.0), "e", "NFE during training")
    assert grew.verdict == CONFIRMED
    assert "2.00x" in grew.evidence and "5 iterations each" in grew.evidence
    assert "backward NFE: 1.50x" in grew.evidence
    assert part(runs(20.0), "e", "NFE during training").verdict == REFUTED
    assert part(runs(40.0), "e", "looser tolerance at test time").verdict == NOT_MEASURED
    assert claim(runs(40.0), "e").verdict == PARTLY  # a part not measured: not confirmed


def test_stiff_needs_implicit():
    def stiff(explicit_nfe: int, status: str = "ok") -> pd.DataFrame:
        extra = {"projected_nfe": explicit_nfe, "t_reached": 0.01} if status != "ok" else {}
        return frame(
            row("stiff", problem="vdpol", method="rodas5p", nfe_forward=1000),
            row("stiff", problem="vdpol", method="dopri5", status=status, extra=extra,
                nfe_forward=explicit_nfe if status == "ok" else 120_000),
        )

    assert claim(stiff(50_000), "f").verdict == CONFIRMED
    assert claim(stiff(2_000), "f").verdict == REFUTED
    projected = part(stiff(5_000_000, "max_steps"), "f", "explicit cost")
    assert projected.verdict == CONFIRMED and "projected NFE" in projected.evidence


def seminorm_rows(saving: float, problem: str = "cnf_pinwheel") -> list[dict]:
    """The seminorm study's rows of one case: odebench backsolve and torchdiffeq, per part,
    without and with the seminorm; the seminorm curve reaches each gradient error with
    ``saving`` fewer backward NFE (and wall)."""
    rows = []
    for backend in ("odebench", "torchdiffeq"):
        for semi in (False, True):
            gradient = "backsolve_seminorm" if semi and backend == "torchdiffeq" else "backsolve"
            for rtol, nfe in ((1e-4, 60), (1e-6, 120), (1e-8, 240)):
                cost = nfe * (1 - saving) if semi else nfe
                rows.append(row("seminorm", problem=problem, backend=backend, gradient=gradient,
                                rtol=rtol, atol=rtol, state_dim=96, seminorm=semi,
                                params={"adjoint_norm": "per_part", "n_params": 8836,
                                        "atol_ratio": 1.0},
                                nfe_backward=round(cost), wall_backward_s=cost / 1000,
                                grad_error=rtol))
    return rows


def test_seminorm_verdict_follows_the_saving_at_equal_gradient_error():
    assert claim(frame(*seminorm_rows(0.4)), "g").verdict == PARTLY  # no MLP rows
    both = frame(*seminorm_rows(0.4), *seminorm_rows(0.3, problem="mlp"))
    assert claim(both, "g").verdict == CONFIRMED
    cnf = part(both, "g", "CNF")
    assert "60.00%" not in cnf.evidence and "40.00%" in cnf.evidence
    assert "torchdiffeq backsolve per_part, atol/rtol 1" in cnf.evidence
    assert part(frame(*seminorm_rows(0.0)), "g", "CNF").verdict == REFUTED
    assert part(frame(*seminorm_rows(0.1)), "g", "CNF").verdict == PARTLY
    assert part(frame(*seminorm_rows(-0.2)), "g", "CNF").verdict == REFUTED
    plain_only = [r for r in seminorm_rows(0.4) if not r["seminorm"]]
    assert part(frame(*plain_only), "g", "CNF").verdict == NOT_MEASURED


def test_markdown_lists_every_claim(tmp_path):
    rows = frame(*classifier(0.02), *memory(backsolve_grows=False))
    claims = evaluate_claims(rows)
    text = to_markdown(claims)
    for c in claims:
        assert f"| {c.key} |" in text and f"**({c.key}) {c.verdict}.**" in text
    path = write_claims(claims, tmp_path / "tables")
    assert path.read_text() == text


# --------------------------------------------------------------------------- the models
# study's claim rows (odenet_test_tol, resnet_memory, odenet_memory)

TOLERANCES = (1e-4, 1e-3, 1e-2, 1e-1)
REFERENCE = {"dtype": "float64", "rtol": 1e-6, "atol": 1e-6, "n_images": 64, "spread": 2e-5}


def sweep_rows(nfe: tuple[int, ...], wall: tuple[float, ...],
             error: tuple[float, ...]) -> pd.DataFrame:
    """One trained ODE-Net evaluated at ``TOLERANCES`` (tightest first)."""
    return frame(*[row("models", problem="digits", model="odenet_test_tol", gradient=None,
                       rtol=tol, atol=tol, dtype="float32", mode="quick", batch=360,
                       nfe_forward=n, wall_forward_s=w, wall_forward_iqr_s=w / 10, n_repeats=5,
                       sol_error=tol / 10,
                       params={"config": "quick", "train_gradient": "backprop",
                               "train_tol": 1e-2},
                       extra={"test_error": e, "n_test": 360, "train_rtol": 1e-2,
                              "train_atol": 1e-2, "sol_error_reference": REFERENCE})
                   for tol, n, w, e in zip(TOLERANCES, nfe, wall, error, strict=True)])


def tolerance(rows: pd.DataFrame):
    return part(rows, "e", "looser tolerance at test time")


def test_looser_tolerance_confirmed_with_its_numbers():
    result = tolerance(sweep_rows((56, 38, 26, 20), (0.137, 0.114, 0.056, 0.052),
                                (0.0972, 0.0972, 0.0944, 0.1)))
    assert result.verdict == CONFIRMED
    evidence = result.evidence
    assert "rtol 0.0001: NFE 56, wall 137 ms (IQR 13.7 ms, N 5), test error 9.72%, " \
        "z(T) error 1e-05" in evidence
    assert "rtol 0.1: NFE 20, wall 52 ms" in evidence
    assert "NFE 56 -> 20" in evidence and "wall 137 ms -> 52 ms" in evidence
    assert "at most 0.28%" in evidence and f"{100 * TEST_ERROR_CHANGE_MAX:.2f}%" in evidence
    assert "trained (quick, backprop) at rtol 0.01" in evidence and "360 test images" in evidence
    assert "float64 solve at rtol 1e-06" in evidence


def test_looser_tolerance_refuted_when_nfe_or_wall_do_not_fall():
    same_nfe = sweep_rows((30, 30, 30, 30), (0.1, 0.09, 0.08, 0.07), (0.1,) * 4)
    assert tolerance(same_nfe).verdict == REFUTED
    slower = sweep_rows((56, 38, 26, 20), (0.1, 0.12, 0.13, 0.15), (0.1,) * 4)
    assert tolerance(slower).verdict == REFUTED


def test_looser_tolerance_accuracy_cost_above_threshold():
    jump = 2 * TEST_ERROR_CHANGE_MAX
    # the loosest tolerance costs accuracy, the others do not: partly
    loosest = sweep_rows((56, 38, 26, 20), (0.137, 0.114, 0.056, 0.052),
                       (0.1, 0.1, 0.1, 0.1 + jump))
    assert tolerance(loosest).verdict == PARTLY
    assert f"at most {100 * jump:.2f}%" in tolerance(loosest).evidence
    every = sweep_rows((56, 38, 26, 20), (0.137, 0.114, 0.056, 0.052),
                     (0.1, 0.1 + jump, 0.1 + jump, 0.1 + jump))
    assert tolerance(every).verdict == REFUTED


def test_looser_tolerance_not_measured_from_one_tolerance_or_failed_rows():
    one = sweep_rows((56, 38, 26, 20), (0.1,) * 4, (0.1,) * 4).iloc[:1]
    assert tolerance(one).verdict == NOT_MEASURED
    failed = sweep_rows((56, 38, 26, 20), (0.1,) * 4, (0.1,) * 4).assign(status="timeout")
    assert tolerance(failed).verdict == NOT_MEASURED


def memory_rows(resnet_grows: bool = True, backsolve_grows: bool = False) -> list[dict]:
    """One training step's saved bytes: the ResNet per depth, the ODE-Net per gradient method
    and tolerance (forward NFE 20, 32, 44, 68)."""
    rows = [row("models", problem="digits", model="resnet_memory", method="none",
                gradient="backprop", rtol=None, atol=None, dtype="float32", mode="quick",
                batch=16, saved_bytes=600_000 + (100_000 * depth if resnet_grows else 0),
                params={"config": "quick", "n_blocks": depth})
            for depth in (1, 2, 4, 8)]
    for gradient in ("backprop", "backsolve"):
        for tol, nfe in zip(TOLERANCES[::-1], (20, 32, 44, 68), strict=True):
            grows = gradient == "backprop" or backsolve_grows
            rows.append(row("models", problem="digits", model="odenet_memory", gradient=gradient,
                            rtol=tol, atol=tol, dtype="float32", mode="quick", batch=16,
                            nfe_forward=nfe, nfe_backward=nfe // 2,
                            saved_bytes=125_000 * nfe if grows else 590_000,
                            params={"config": "quick"}))
    return rows


def memory_part(rows: list[dict]):
    return part(frame(*rows), "a", "O(1) memory")


def test_memory_per_depth_and_per_nfe():
    result = memory_part(memory_rows())
    assert result.verdict == CONFIRMED
    assert "ResNet depth 1, 2, 4, 8: 0.7, 0.8, 1, 1.4 MB (grows 2.00x)" in result.evidence
    assert "ODE-Net backsolve at NFE 20, 32, 44, 68: 0.59, 0.59, 0.59, 0.59 MB (flat 1.00x)" \
        in result.evidence
    assert "ODE-Net backprop at NFE 20, 32, 44, 68: 2.5, 4, 5.5, 8.5 MB (grows 3.40x)" \
        in result.evidence
    assert "quick, cpu, float32, batch 16" in result.evidence


def test_memory_verdict_flips():
    assert memory_part(memory_rows(backsolve_grows=True)).verdict == PARTLY
    assert memory_part(memory_rows(resnet_grows=False)).verdict == PARTLY
    assert memory_part(memory_rows(resnet_grows=False, backsolve_grows=True)).verdict == REFUTED
    resnet_only = [r for r in memory_rows() if r["model"] == "resnet_memory"]
    only = memory_part(resnet_only)
    assert only.verdict == NOT_MEASURED and "ResNet depth 1, 2, 4, 8" in only.evidence


def test_one_step_memory_rows_are_not_training():
    # the memory rows' backward/forward NFE is 0.5: inside the band, but not training
    assert part(frame(*memory_rows()), "b", "training").verdict == NOT_MEASURED
    training = [row("models", model=m, gradient="backsolve", nfe_forward=100, nfe_backward=140,
                    extra={"nfe_backward_over_forward": 1.4}) for m in ("cnf", "odenet")]
    result = part(frame(*training, *memory_rows()), "b", "training")
    assert result.verdict == REFUTED and "N 2" in result.evidence
