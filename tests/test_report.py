"""The report pipeline on a small synthetic results directory (checks the plumbing, not physics)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from odebench.environment import Provenance
from odebench.report import build_report
from odebench.report.accuracy import cost_at
from odebench.report.build import MixedCommitsError
from odebench.report.equal_accuracy import stiff_equal_accuracy_table
from odebench.report.figures import FIGURES, Drawing, points, save
from odebench.report.select import Aggregate, AmbiguousCellError
from odebench.report.tables import (
    LONGTABLE_ROWS,
    TABLES,
    TableSpec,
    build_table,
    format_value,
    to_latex,
)
from odebench.results import ResultsStore, Row

COMMIT = "abc1234"
HOST = "testhost"
STAMP = "2024-05-01T12:00:00+00:00"
#: A PNG a trainer drew, as the rows record it: relative to the working directory.
TRAINER_PNG = Path("reports/figures/models/cnf_two_moons_backprop.png")


def row(study: str, **values) -> Row:
    defaults = dict(
        problem="expdecay",
        backend="odebench",
        method="dopri5",
        rtol=1e-6,
        atol=1e-8,
        dtype="float64",
        device="cpu",
        commit=COMMIT,
        hostname=HOST,
        timestamp=STAMP,
    )
    return Row(study=study, **{**defaults, **values})


def synthetic_rows() -> list[Row]:
    rows = []
    for problem in ("expdecay", "vdp"):
        for backend in ("odebench", "torchdiffeq"):
            for rtol in (1e-4, 1e-8):
                rows.append(
                    row(
                        "work_precision",
                        problem=problem,
                        backend=backend,
                        rtol=rtol,
                        atol=rtol * 1e-2,
                        sol_error=rtol * 2,
                        nfe_forward=int(10 / rtol**0.25),
                        wall_forward_s=1e-4 / rtol**0.25,
                        steps=20,
                        rejected=2,
                    )
                )
        for gradient, error in (("backprop", 1.234e-5), ("interpolated", 4.5e-6)):
            rows.append(
                row(
                    "gradient_accuracy",
                    problem=problem,
                    gradient=gradient,
                    grad_error=error,
                    nfe_forward=100,
                    nfe_backward=210,
                )
            )
        for backend, ratio in (("torchdiffeq", 1.5), ("odebench", 2.25)):
            rows.append(
                row(
                    "overhead",
                    problem=problem,
                    backend=backend,
                    overhead_ratio=ratio,
                    nfe_forward=26,
                    wall_forward_s=26 * ratio * 1e-4,
                    wall_per_nfe_s=ratio * 1e-4,
                    extra={"eval_s": 1e-4},  # one vector-field evaluation, s
                )
            )
    rows.append(
        row(
            "gradient_accuracy",
            problem="vdp",
            gradient="backsolve",
            status="max_steps",
            message="max_steps=10000 reached at t=3.1, h=1e-9",
        )
    )
    rows.append(row("verify", problem="expdecay", gradient="backprop", grad_error=2e-9))
    for T in (1.0, 5.0, 10.0):
        for gradient in ("backprop", "backsolve"):
            stopped = gradient == "backsolve" and T == 10.0
            rows.append(
                row(
                    "lorenz_drift",
                    problem="lorenz",
                    gradient=gradient,
                    T=T,
                    grad_error=None if stopped else 1e-9 * 10**T,
                    recon_error=1e-10 * 10**T if gradient == "backsolve" and not stopped else None,
                    status="nonfinite" if stopped else "ok",
                )
            )
            rows.append(
                row(
                    "memory_scaling",
                    problem="neural",
                    gradient=gradient,
                    T=T,
                    dtype="float32",
                    saved_bytes=int(4096 * T) if gradient == "backprop" else 4096,
                    peak_rss_bytes=300_000_000,
                )
            )
    for rtol, dtype in ((1e-4, "float64"), (1e-8, "float64"), (1e-8, "float32")):
        rows.append(
            row(
                "stiff",
                problem="robertson",
                method="radau",
                rtol=rtol,
                atol=rtol,
                dtype=dtype,
                scd=3.5 if rtol == 1e-4 else 7.25,
                steps=40,
                nfe_forward=300,
                n_jac=6,
                n_lu=25,
                wall_forward_s=0.02,
            )
        )
    for backend, mode, steps in (("odebench", "joint", 1720.0), ("odebench", "per_sample", 1095.0),
                                 ("torchode", "per_sample", 847.5)):
        rows.append(
            row(
                "per_sample",
                problem="vdp",
                backend=backend,
                T=50.0,
                batch=4,
                params={"batching": mode},
                nfe_forward=7256,
                wall_forward_s=0.4,
                extra={"batching": mode, "steps_per_sample_mean": steps, "steps_per_sample_max": 1199},
            )
        )
    rows.extend(scaling_rows())
    rows.extend(model_rows())
    rows.extend(seminorm_rows())
    return rows


def seminorm_rows(saving: float = 0.4) -> list[Row]:
    """``seminorm`` rows as the study writes them: one CNF case, odebench backsolve per part and
    torchdiffeq's adjoint, without and with the seminorm; the seminorm curves reach the same
    gradient errors with ``saving`` fewer backward NFE."""
    rows = []
    for backend, gradient in (("odebench", "backsolve"), ("torchdiffeq", "backsolve")):
        for semi in (False, True):
            for rtol, nfe in ((1e-4, 100), (1e-6, 200), (1e-8, 400)):
                rows.append(row(
                    "seminorm", problem="cnf_eight_gaussians", backend=backend,
                    gradient=gradient + ("_seminorm" if semi and backend == "torchdiffeq" else ""),
                    rtol=rtol, atol=rtol, T=1.0, width=64, batch=32, state_dim=96, seminorm=semi,
                    params={"adjoint_norm": "per_part", "n_params": 8836, "atol_ratio": 1.0},
                    nfe_forward=150, nfe_backward=round(nfe * (1 - saving)) if semi else nfe,
                    wall_backward_s=nfe * 1e-3 * ((1 - saving) if semi else 1.0),
                    grad_error=10 * rtol, extra={"steps_backward": nfe // 6}))
    return rows


#: gradient_scaling cells: (axis, problem, parameters, state size) -> total wall (s) per gradient;
#: backprop wins the small MLP, checkpointed the large one.
SCALING = {
    ("params", "mlp", 18, 2): {"backprop": 0.004, "checkpointed": 0.006},
    ("params", "mlp", 2594, 2): {"backprop": 0.010, "checkpointed": 0.007},
    ("state", "brusselator_2d", 3, 8): {"backprop": 0.015, "checkpointed": 0.0096},
}


def scaling_rows() -> list[Row]:
    """``gradient_scaling`` rows as the study writes them: axis and parameters in ``params``."""
    return [row("gradient_scaling", problem=problem, gradient=gradient, rtol=1e-5, atol=1e-5,
                state_dim=state, params={"axis": axis, "n_params": n_params},
                wall_forward_s=total / 4, wall_backward_s=total * 3 / 4,
                saved_bytes=1432 * n_params if gradient == "backprop" else 48,
                nfe_forward=20, nfe_backward=19)
            for (axis, problem, n_params, state), walls in SCALING.items()
            for gradient, total in walls.items()]


def model_row(model: str, problem: str, gradient: str, metrics: dict, ode: bool = True) -> Row:
    """A ``models`` row as the study writes it (NFE per iteration; baselines: method "none")."""
    forward = [10, 12, 14] if ode else [0, 0, 0]
    backward = [n + (2 if gradient == "checkpointed" else -1) for n in forward] if ode else forward
    extra = {
        **metrics,
        "n_params": 1284,
        "losses": [3.0, 2.0, 1.375],
        "nfe_forward_per_iter": forward,
        "nfe_backward_per_iter": backward,
        "train_wall_s": 2.5,
        "figures": [str(TRAINER_PNG), str(TRAINER_PNG), "reports/figures/models/missing.png"],
        "final_loss": 1.375,
    }
    if ode:
        extra["nfe_backward_over_forward"] = sum(backward) / sum(forward)
    return row(
        "models",
        problem=problem,
        model=model,
        gradient=gradient,
        method="dopri5" if ode else "none",
        rtol=None,
        atol=None,
        nfe_forward=12 if ode else 0,
        nfe_backward=backward[1],
        saved_bytes=4096,
        extra=extra,
    )


def model_rows() -> list[Row]:
    rows = []
    for gradient in ("backprop", "checkpointed"):
        rows += [
            model_row("cnf", "eight_gaussians", gradient, {"test_nll": 3.25}),
            model_row("latent_ode", "spirals", gradient, {"interp_mse": 0.5, "extrap_mse": 0.75}),
            model_row("odenet", "digits", gradient, {"test_error": 0.0625}),
            model_row("node_toy", "flip_toy", gradient, {"final_mse": 1.0}),
            model_row("anode_toy", "flip_toy", gradient, {"final_mse": 1e-7}),
        ]
    gru = {"interp_mse": 2.0, "extrap_mse": 5.0}
    rows.append(model_row("gru", "spirals", "backprop", gru, ode=False))
    rows.append(model_row("resnet", "digits", "backprop", {"test_error": 0.125}, ode=False))
    return rows


@pytest.fixture(scope="module")
def repo_root(tmp_path_factory) -> Path:
    """The working directory of the report build, holding the PNG a trainer drew."""
    root = tmp_path_factory.mktemp("repo")
    (root / TRAINER_PNG).parent.mkdir(parents=True)
    matplotlib.image.imsave(root / TRAINER_PNG, np.zeros((2, 2, 3)))
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory, repo_root) -> tuple[Path, dict[str, list[Path]]]:
    results = tmp_path_factory.mktemp("results")
    store = ResultsStore(results)
    for item in synthetic_rows():
        store.append(item)
    out = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo_root)  # paths in the rows are relative to the working directory
        written = build_report(results, out)
    return out, written


def draw(name: str, frame: pd.DataFrame) -> Drawing | None:
    """The figure ``name`` of the report drawn from ``frame``'s rows."""
    spec = next(spec for spec in FIGURES if spec.name == name)
    return spec.draw(points(frame[frame["study"] == spec.study], spec), spec)


def markdown_rows(path: Path) -> list[list[str]]:
    """The cells of each table line of a Markdown file."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in path.read_text().splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def test_every_file_is_written(report):
    out, written = report
    assert set(written) == {"tables", "claims", "figures", "html"}
    assert written["claims"] == [out / "tables" / "claims.md"]
    expected_tables = {
        out / "tables" / f"{name}{suffix}"
        for name in ["equal_accuracy", "stiff_equal_accuracy", *(spec.name for spec in TABLES)]
        for suffix in (".md", ".csv", ".json", ".tex")
    }
    assert set(written["tables"]) == expected_tables
    drawn = {spec.name for spec in FIGURES} - {"gradient_precision_wall"}  # no backward wall
    expected_figures = {out / "figures" / f"{name}{suffix}" for name in drawn
                        for suffix in (".png", ".svg")}
    assert set(written["figures"]) == expected_figures
    assert written["html"] == [out / "index.html"]
    for path in [*written["tables"], *written["figures"], *written["html"]]:
        assert path.is_file() and path.stat().st_size > 0, path
    assert (out / "figures" / "overhead.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "figures" / "overhead.svg").read_text()


def test_gradient_table_holds_the_values(report):
    out, _ = report
    header, by_key = table_by_key(out / "tables" / "gradient_error.md", 2)
    assert header == ["study", "gradient", "expdecay", "vdp"]
    assert by_key[("gradient_accuracy", "backprop")] == {"expdecay": "1.23e-05", "vdp": "1.23e-05"}
    assert by_key[("gradient_accuracy", "backsolve")] == {"expdecay": "", "vdp": "max_steps"}
    assert by_key[("verify", "backprop")]["expdecay"] == "2e-09"
    text = (out / "tables" / "gradient_error.md").read_text()
    assert "rtol = 1e-06" in text  # a setting shared by every row is listed, not a column


def test_long_tables(report):
    out, _ = report
    lorenz = markdown_rows(out / "tables" / "lorenz_drift.md")
    assert lorenz[0] == ["T", "gradient", "status", "grad_error", "recon_error"]
    assert ["10", "backsolve", "nonfinite", "", ""] in lorenz
    assert ["5", "backsolve", "ok (over budget)", "0.0001", "1e-05"] in lorenz  # budget 1e-4
    assert ["1", "backsolve", "ok", "1e-08", "1e-09"] in lorenz
    stiff = markdown_rows(out / "tables" / "stiff.md")
    assert stiff[0] == [
        "rtol",
        "atol",
        "dtype",
        "status",
        "scd",
        "steps",
        "nfe_forward",
        "n_jac",
        "n_lu",
        "wall_forward_s",
    ]
    assert ["0.0001", "0.0001", "float64", "ok", "3.50", "40", "300", "6", "25"] in [
        line[:9] for line in stiff
    ]
    overhead = markdown_rows(out / "tables" / "overhead.md")
    assert overhead[0] == [
        "problem",
        "backend",
        "status",
        "overhead_ratio",
        "wall_forward_s",
        "nfe_forward",
        "wall_per_nfe_s",
        "eval_s",
    ]
    assert [line[:4] for line in overhead[1:]] == [
        ["expdecay", "odebench", "ok", "2.25"],
        ["expdecay", "torchdiffeq", "ok", "1.50"],
        ["vdp", "odebench", "ok", "2.25"],
        ["vdp", "torchdiffeq", "ok", "1.50"],
    ]
    assert overhead[1][4:] == ["0.00585", "26", "0.000225", "0.0001"]
    title = (out / "tables" / "overhead.md").read_text().splitlines()[0]
    assert "wall / (NFE x one vector-field evaluation)" in title
    memory = markdown_rows(out / "tables" / "memory.md")
    assert ["10", "backprop", "ok", "40960", "300000000"] in memory


def table_by_key(path: Path, keys: int) -> tuple[list[str], dict[tuple[str, ...], dict[str, str]]]:
    """The header of a Markdown table and its rows as {key cells: {column: cell}}."""
    header, *lines = markdown_rows(path)
    return header, {
        tuple(line[:keys]): dict(zip(header[keys:], line[keys:], strict=True)) for line in lines
    }


def test_models_overview(report):
    out, _ = report
    header, by_key = table_by_key(out / "tables" / "models.md", 4)
    assert header == [
        "model",
        "problem",
        "gradient",
        "method",
        "status",
        "final_loss",
        "nfe_forward",
        "nfe_backward",
        "nfe_backward_over_forward",
        "saved_bytes",
        "train_wall_s",
    ]
    assert len(by_key) == 12  # five ODE models x two gradients, two baselines
    assert by_key[("cnf", "eight_gaussians", "backprop", "dopri5")] == {
        "final_loss": "1.38",
        "nfe_forward": "12",
        "nfe_backward": "11",
        "nfe_backward_over_forward": "0.917",
        "saved_bytes": "4096",
        "train_wall_s": "2.5",
        "status": "ok",
    }
    assert by_key[("resnet", "digits", "backprop", "none")]["nfe_backward_over_forward"] == ""
    text = (out / "tables" / "models.md").read_text()
    assert "losses" not in text and "test_nll" not in text  # lists and per-model metrics elsewhere


def test_model_tables_show_their_metrics(report):
    out, _ = report
    header, classifier = table_by_key(out / "tables" / "models_classifier.md", 3)
    assert header[:6] == ["model", "gradient", "method", "status", "test_error", "n_params"]
    assert {key[0] for key in classifier} == {"odenet", "resnet"}
    assert ("resnet", "backprop", "none") in classifier
    assert classifier[("resnet", "backprop", "none")]["test_error"] == "0.125"
    assert classifier[("odenet", "checkpointed", "dopri5")]["test_error"] == "0.0625"
    assert "scikit-learn digits" in (out / "tables" / "models_classifier.md").read_text()

    header, cnf = table_by_key(out / "tables" / "models_cnf.md", 1)
    assert header[:4] == ["gradient", "status", "test_nll", "n_params"]
    assert cnf[("backprop",)]["test_nll"] == "3.25"
    assert "nats" in (out / "tables" / "models_cnf.md").read_text()
    assert "model = cnf" in (out / "tables" / "models_cnf.md").read_text()  # one model: fixed

    header, latent = table_by_key(out / "tables" / "models_latent.md", 3)
    assert header[4:6] == ["interp_mse", "extrap_mse"]
    assert latent[("gru", "backprop", "none")]["extrap_mse"] == "5"
    assert {key[0] for key in latent} == {"gru", "latent_ode"}

    header, toys = table_by_key(out / "tables" / "models_augmented.md", 2)
    assert header[:5] == ["model", "gradient", "status", "final_mse", "n_params"]
    assert header[5:] == ["nfe_forward", "nfe_backward"]
    assert toys[("anode_toy", "backprop")]["final_mse"] == "1e-07"
    assert toys[("node_toy", "checkpointed")]["nfe_backward"] == "14"


def test_nfe_ratio_table_has_a_column_per_ode_model(report):
    out, _ = report
    header, ratio = table_by_key(out / "tables" / "models_nfe_ratio.md", 1)
    assert header == ["gradient", "anode_toy", "cnf", "latent_ode", "node_toy", "odenet"]
    assert ratio[("backprop",)]["cnf"] == "0.917"
    assert ratio[("checkpointed",)]["odenet"] == "1.17"


def test_stiff_targets_keep_rtol_1e8_float64(report):
    out, _ = report
    text = (out / "tables" / "stiff_targets.md").read_text()
    assert "rtol = 1e-08" in text and "dtype = float64" in text
    cells = markdown_rows(out / "tables" / "stiff_targets.md")
    assert cells[0][-7:] == [
        "status",
        "scd",
        "steps",
        "nfe_forward",
        "n_jac",
        "n_lu",
        "wall_forward_s",
    ]
    assert len(cells) == 2 and cells[1][-6] == "7.25" and cells[1][-7] == "ok"
    frame = pd.read_csv(out / "tables" / "stiff_targets.csv")
    assert len(frame) == 1


def test_build_table_where_matches_floats_and_lifted_extras():
    frame = pd.DataFrame([r.to_dict() for r in synthetic_rows()])
    spec = TableSpec(
        name="t",
        title="t",
        studies=("models",),
        keys=("model", "gradient"),
        values=("n_params", "test_error"),
        extra_values=True,
        where=(("test_error", (0.0625,)),),
    )
    table = build_table(spec, frame)
    assert list(table.frame.columns) == ["gradient", "status", "n_params", "test_error"]
    assert table.fixed == [("model", "odenet")] and table.provenance.rows == 2
    near = TableSpec("s", "s", ("stiff",), ("dtype",), where=(("rtol", (1e-8 * (1 + 1e-12),)),))
    assert len(build_table(near, frame).frame) == 2  # float32 and float64
    nothing = TableSpec("n", "n", ("stiff",), ("dtype",), where=(("rtol", (1.0,)),))
    assert build_table(nothing, frame) is None


def test_model_figures_accept_extra_as_json_text():
    frame = pd.DataFrame([r.to_dict() for r in model_rows()])
    as_text = frame.assign(extra=[json.dumps(extra) for extra in frame["extra"]])
    drawing = draw("models_nfe_ratio", as_text)
    assert drawing is not None and "0.92" in drawing.caption
    assert len(drawing.figure.axes[0].patches) >= 10  # a bar per ODE model and gradient


def test_csv_is_plain_data_with_a_provenance_sidecar(report):
    out, _ = report
    path = out / "tables" / "gradient_error.csv"
    assert not path.read_text().startswith("#")
    frame = pd.read_csv(path)  # a pivot is exported one line per cell, status an early column
    assert list(frame.columns) == ["study", "gradient", "problem", "T", "status", "grad_error"]
    backprop = frame[(frame["gradient"] == "backprop") & (frame["study"] == "gradient_accuracy")]
    assert backprop.set_index("problem").loc["vdp", "grad_error"] == 1.234e-5
    assert frame["grad_error"].dtype == np.float64
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["title"].startswith("Gradient error")
    assert sidecar["provenance"]["commit"] == COMMIT


def test_every_csv_loads_with_bare_read_csv(report):
    out, written = report
    for path in written["tables"]:
        if path.suffix == ".csv":
            frame = pd.read_csv(path)
            assert not frame.empty, path
            for column in ("nfe_forward", "nfe_backward", "steps", "saved_bytes", "n_params"):
                if column in frame and frame[column].notna().all():
                    assert frame[column].dtype == np.int64, (path.name, column)
    memory = pd.read_csv(out / "tables" / "memory.csv")
    assert memory["saved_bytes"].dtype == np.int64 and memory["T"].dtype == np.float64
    nfe = pd.read_csv(out / "tables" / "nfe.csv")  # a stopped run leaves its counts empty
    assert nfe["nfe_forward"].isna().sum() == 2 and not pd.api.types.is_numeric_dtype(nfe["status"])
    assert list(nfe.columns).index("status") < list(nfe.columns).index("nfe_forward")


def test_latex_is_booktabs_with_provenance(report):
    out, _ = report
    for spec in TABLES:
        tex = (out / "tables" / f"{spec.name}.tex").read_text()
        assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
        assert f"% commit: {COMMIT}" in tex
        caption = tex.split("\\caption{", 1)[1].split("}", 1)[0]
        assert COMMIT not in caption  # short caption; provenance in the note under the table
        assert f"commit {COMMIT}" in tex.split("\\footnotesize", 1)[1]
    nfe = (out / "tables" / "nfe.tex").read_text()
    assert "nfe\\_forward" in nfe
    assert "\\begin{tabular}{llllrrlrrrr}" in nfe  # text left (status too), numbers right
    lorenz = (out / "tables" / "lorenz_drift.tex").read_text()
    assert "backsolve+reanchor" not in lorenz and "backsolve" in lorenz


def test_long_latex_tables_break_across_pages():
    frame = pd.DataFrame([row("nfe_only", problem=f"p{i}", nfe_forward=i).to_dict()
                          for i in range(LONGTABLE_ROWS + 1)])
    table = build_table(TableSpec("long", "Long", ("nfe_only",), ("problem",),
                                  values=("nfe_forward",)), frame)
    tex = to_latex(table)
    assert "\\begin{longtable}{llr}" in tex and "\\endhead" in tex


def test_markdown_carries_provenance(report):
    out, _ = report
    text = (out / "tables" / "stiff.md").read_text()
    header = text.split("\n|", 1)[0]
    for needle in (
        f"commit {COMMIT}",
        HOST,
        "date (UTC) 2024-05-01",
        "torch ",
        "scipy ",
        "torchdiffeq ",
        "odebench ",
    ):
        assert needle in header


def test_html_is_offline_and_ties_everything(report, repo_root):
    out, written = report
    html = (out / "index.html").read_text()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, flags=re.IGNORECASE)
    assert links
    assert not [link for link in links if re.match(r"\s*(https?:)?//", link, re.IGNORECASE)]
    for link in links:
        if not link.startswith("#"):
            assert not Path(link).is_absolute()
    assert "reports/asv" in html and "asv/index.html" not in html  # said how to get, not linked
    for path in written["figures"]:
        if path.suffix == ".svg":
            assert f'src="figures/{path.name}"' in html
    for path in written["tables"]:
        assert f'href="tables/{path.name}"' in html
    assert COMMIT in html and HOST in html and "2024-05-01" in html
    assert "<td>1.23e-05</td>" in html and "max_steps" in html


def test_html_embeds_the_trainer_pngs_that_exist(report, repo_root):
    out, _ = report
    html = (out / "index.html").read_text()
    assert "Model figures drawn by the trainers" in html
    src = Path(os.path.relpath(repo_root / TRAINER_PNG, out)).as_posix()
    assert html.count(f'<img src="{src}"') == 1  # listed by every models row: embedded once
    assert (out / src).resolve() == (repo_root / TRAINER_PNG).resolve()
    assert f">{TRAINER_PNG.name}</a></figcaption>" in html
    assert "missing.png" not in html


def test_figure_carries_provenance_footer(tmp_path):
    frame = pd.DataFrame([r.to_dict() for r in synthetic_rows() if r.study == "memory_scaling"])
    provenance = Provenance.from_rows(frame)
    figure = draw("memory_scaling", frame).figure
    paths = save(figure, provenance, tmp_path / "memory")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    footers = [text.get_text() for text in figure.texts]
    assert provenance.footer() in footers
    assert COMMIT in provenance.footer() and HOST in provenance.footer()
    assert "2024-05-01" in provenance.footer()


def test_missing_studies_are_skipped(tmp_path):
    results = tmp_path / "results"
    store = ResultsStore(results)
    for item in synthetic_rows():
        if item.study == "overhead":
            store.append(item)
    written = build_report(results, tmp_path / "out")
    assert {p.name for p in written["tables"]} == {
        "overhead.md", "overhead.csv", "overhead.json", "overhead.tex"}
    assert {p.name for p in written["figures"]} == {"overhead.png", "overhead.svg"}
    html = (tmp_path / "out" / "index.html").read_text()
    assert "lorenz_drift\"" not in html and "drawn by the trainers" not in html  # no table or figure


def test_empty_results_give_an_empty_report(tmp_path):
    written = build_report(tmp_path / "nothing", tmp_path / "out")
    assert written["tables"] == [] and written["figures"] == []
    assert "No results rows" in written["html"][0].read_text()


def test_build_table_without_rows_is_none():
    assert build_table(TABLES[0], ResultsStore("/nonexistent").rows()) is None


@pytest.mark.parametrize(
    ("value", "column", "text"),
    [
        (None, "sol_error", ""),
        (float("nan"), "sol_error", ""),
        (1.23456e-7, "sol_error", "1.23e-07"),
        (120.0, "nfe_forward", "120"),
        (7, "steps", "7"),
        (2.0, "overhead_ratio", "2.00"),
        (float("inf"), "grad_error", "inf"),
        (True, "seminorm", "yes"),
        ("max_steps", "grad_error", "max_steps"),
    ],
)
def test_format_value(value, column, text):
    assert format_value(value, column) == text


def test_classifier_table_keeps_one_row_per_seed(tmp_path):
    """Runs that differ only in the seed in their params are separate rows, seed shown."""
    store = ResultsStore(tmp_path)
    for seed, error in ((0, 0.03), (1, 0.02), (2, 0.025)):
        base = model_row("odenet", "digits", "backprop", {"test_error": error})
        params = {"config": "full", **({"seed": seed} if seed else {})}
        store.append(dataclasses.replace(base, params=params))
    spec = next(s for s in TABLES if s.name == "models_classifier")
    table = build_table(spec, store.rows())
    assert table is not None and list(table.frame["seed"]) == [0, 1, 2]
    assert list(table.frame["test_error"]) == [0.03, 0.02, 0.025]


# --- single-sourcing: one row per cell or point, or a declared aggregate (issue 13.1) -------


def frame_of(rows: list[Row]) -> pd.DataFrame:
    return pd.DataFrame([r.to_dict() for r in rows])


def lorenz_gradient_rows() -> list[Row]:
    """Lorenz at T=1 and T=2, same settings otherwise: two cells, not one."""
    return [row("gradient_accuracy", problem="lorenz", gradient="backprop", T=T, grad_error=e)
            for T, e in ((1.0, 1.5e-5), (2.0, 0.444))]


def test_gradient_table_keeps_lorenz_T1_and_T2_apart():
    table = build_table(TABLES[0], frame_of(lorenz_gradient_rows()))
    assert list(table.frame.columns)[-2:] == ["lorenz (T=1)", "lorenz (T=2)"]
    assert table.frame.iloc[0, -2:].tolist() == [1.5e-5, 0.444]
    assert table.provenance.rows == 2  # the header's row count equals the cells shown


def test_two_rows_for_one_table_cell_are_refused():
    spec = TableSpec("g", "g", ("gradient_accuracy",), ("gradient",), pivot="grad_error",
                     columns=("problem",))  # T not declared
    with pytest.raises(AmbiguousCellError, match=r"2 rows feed the cell .*differ in \['T'"):
        build_table(spec, frame_of(lorenz_gradient_rows()))
    values = TableSpec("v", "v", ("gradient_accuracy",), ("problem", "gradient"),
                       values=("grad_error",))
    with pytest.raises(AmbiguousCellError, match="table 'v'"):
        build_table(values, frame_of(lorenz_gradient_rows()))


def seed_rows() -> list[Row]:
    return [row("models", model="odenet", problem="digits", gradient="backprop",
                params={"seed": seed}, extra={"test_error": error}, wall_forward_s=1.0)
            for seed, error in ((0, 0.01), (1, 0.03), (2, 0.02))]


def test_an_aggregate_names_its_dimension_count_and_spread():
    plain = TableSpec("m", "m", ("models",), ("model", "gradient"), values=("test_error",),
                      extra_values=True)
    with pytest.raises(AmbiguousCellError, match="seed"):
        build_table(plain, frame_of(seed_rows()))
    pooled = dataclasses.replace(plain, aggregate=Aggregate("seed"))
    table = build_table(pooled, frame_of(seed_rows()))
    record = table.frame.iloc[0]
    assert record["test_error"] == pytest.approx(0.02)
    assert (record["test_error_q1"], record["test_error_q3"]) == pytest.approx((0.015, 0.025))
    assert record["n_seed"] == 3
    assert "median of 3 seeds per cell (spread: interquartile range)" in table.notes
    twice = frame_of([*seed_rows(), seed_rows()[0]])  # a seed repeated: still ambiguous
    with pytest.raises(AmbiguousCellError, match="aggregating over 'seed'"):
        build_table(pooled, twice)


def drift_rows() -> list[Row]:
    return [row("lorenz_drift", problem="lorenz", backend=backend, gradient="backprop", T=2.0,
                grad_error=error, recon_error=error / 10)
            for backend, error in (("odebench", 0.305), ("torchdiffeq", 1.74))]


def test_figure_points_keep_libraries_apart_or_refuse():
    spec = next(spec for spec in FIGURES if spec.name == "lorenz_drift")
    data = points(frame_of(drift_rows()), spec)
    assert sorted(data["line_label"]) == ["odebench", "torchdiffeq"]
    assert sorted(data["grad_error"]) == [0.305, 1.74]  # no median of the two libraries
    pooled = dataclasses.replace(spec, line=("gradient",))
    with pytest.raises(AmbiguousCellError, match=r"figure 'lorenz_drift'.*differ in \['backend'"):
        points(frame_of(drift_rows()), pooled)


def test_memory_figure_keeps_widths_and_libraries_apart():
    rows = [row("memory_scaling", problem="neural", backend=backend, gradient="backsolve", T=T,
                width=width, saved_bytes=22528 * (1 if backend == "odebench" else int(T)))
            for backend in ("odebench", "torchdiffeq") for width in (16, 64) for T in (1.0, 10.0)]
    drawing = draw("memory_scaling", frame_of(rows))
    assert len(drawing.figure.axes) == 2  # a panel per width
    assert "odebench/backsolve x1 " in drawing.caption
    assert "torchdiffeq/backsolve+reanchor x10 " in drawing.caption


# --- rows say what ran: peers' names, gradient variants, budget (issue 13.2) ------------------


def test_peer_methods_by_their_own_names_with_the_mapping_stated_once():
    rows = [row("work_precision", backend="torchdiffeq", method="dop853", sol_error=1e-6,
                extra={"library_method": "dopri8"}),
            row("work_precision", backend="odebench", method="dop853", sol_error=1e-7,
                extra={"library_method": "dop853"})]
    table = build_table(TABLES[1], frame_of(rows))
    assert sorted(table.frame["method"]) == ["dop853", "dopri8"]
    assert table.notes == [
        "methods by their libraries' own names: torchdiffeq dopri8 fills odebench's dop853 slot"]


def test_backsolve_variants_are_named_by_what_they_do():
    rows = [
        row("gradient_accuracy", gradient="backsolve", grad_error=1e-5),
        row("gradient_accuracy", gradient="backsolve", grad_error=2e-5,
            params={"options": {"reanchor": True}}),
        row("gradient_accuracy", gradient="backsolve", backend="torchdiffeq", grad_error=3e-5),
    ]
    table = build_table(TABLES[0], frame_of(rows))
    shown = dict(zip(zip(table.frame["backend"], table.frame["gradient"]),
                     table.frame["expdecay"], strict=True))
    assert shown == {("odebench", "backsolve"): 1e-5, ("odebench", "backsolve+reanchor"): 2e-5,
                     ("torchdiffeq", "backsolve+reanchor"): 3e-5}
    assert any(note.startswith("backsolve: ") for note in table.notes)
    assert any(note.startswith("backsolve+reanchor: ") for note in table.notes)
    assert "backsolve+reanchor: the same, but" in table.caption  # the page's line under the table


def test_a_finished_run_over_its_gradient_budget_is_flagged():
    rows = [row("gradient_accuracy", gradient="backsolve", rtol=1e-6, grad_error=1e-3),
            row("gradient_accuracy", gradient="backprop", rtol=1e-6, grad_error=1e-5)]
    table = build_table(TABLES[0], frame_of(rows))  # budget max(100 x 1e-6, 1000 eps) = 1e-4
    display = dict(zip(table.frame["gradient"], table.display()["expdecay"], strict=True))
    assert display == {"backsolve": "0.001 *", "backprop": "1e-05"}
    assert any("over budget" in note and "100 x rtol" in note for note in table.notes)
    nfe = build_table(TABLES[2], frame_of(rows))
    assert dict(zip(nfe.frame["gradient"], nfe.frame["status"], strict=True)) == {
        "backsolve": "ok (over budget)", "backprop": "ok"}


# --- one clean commit per report; wall-clock spread (issue 13.4) -----------------------------


def write_rows(directory: Path, rows: list[Row]) -> Path:
    store = ResultsStore(directory)
    for item in rows:
        store.append(item)
    return directory


def test_report_refuses_a_dirty_tree_or_several_commits(tmp_path):
    dirty = write_rows(tmp_path / "dirty", [row("overhead", commit="abc1234-dirty",
                                                 overhead_ratio=1.5, nfe_forward=26)])
    with pytest.raises(MixedCommitsError, match=r"dirty tree: abc1234-dirty \(1 rows\)"):
        build_report(dirty, tmp_path / "out")
    mixed = write_rows(tmp_path / "mixed", [
        row("overhead", problem=p, commit=c, overhead_ratio=1.5, nfe_forward=26)
        for p, c in (("a", "abc1234"), ("b", "def5678"), ("c", "def5678"))])
    with pytest.raises(MixedCommitsError, match=r"2 commits: abc1234 \(1 rows\), def5678 \(2"):
        build_report(mixed, tmp_path / "out")
    build_report(mixed, tmp_path / "out", allow_mixed=True)
    text = (tmp_path / "out" / "tables" / "overhead.md").read_text()
    assert "rows from several commits: abc1234 (1 rows), def5678 (2 rows)" in text


def test_wall_clock_repeats_show_median_and_iqr():
    rows = [row("overhead", problem="a", overhead_ratio=1.5, wall_forward_s=[1.0, 2.0, 3.0, 4.0,
                                                                              5.0]),
            row("overhead", problem="b", overhead_ratio=1.5, wall_forward_s=2.0,
                wall_forward_iqr_s=0.25)]
    table = build_table(TABLES[5], frame_of(rows))
    frame = table.frame.set_index("problem")
    assert frame.loc["a", "wall_forward_s"] == 3.0 and frame.loc["a", "wall_forward_iqr_s"] == 2.0
    assert frame.loc["b", "wall_forward_iqr_s"] == 0.25
    assert list(table.frame.columns).index("wall_forward_iqr_s") == list(
        table.frame.columns).index("wall_forward_s") + 1


# --- equal accuracy (issue 13.6) and readable work-precision diagrams (issue 14.2) -----------


def test_cost_at_interpolates_log_log_and_says_why_not():
    costs = [10.0, 100.0, 1000.0]
    errors = [1e-2, 1e-4, 1e-6]  # error = cost^-2 exactly
    assert cost_at(costs, errors, 1e-3).cost == pytest.approx(10**1.5)
    assert cost_at(costs, errors, 1e-6).cost == pytest.approx(1000.0)
    unreached = cost_at(costs, errors, 1e-8)
    assert unreached.cost is None and unreached.reason.startswith("not reached")
    below = cost_at(costs, errors, 1e-1)
    assert below.cost is None and below.reason.startswith("below the target")
    assert cost_at([10.0, float("nan")], [1e-2, 1e-4], 1e-3).reason.startswith("not reached")


def test_equal_accuracy_table_and_headline_figure(report):
    out, _ = report
    frame = pd.read_csv(out / "tables" / "equal_accuracy.csv")
    cell = frame[(frame["problem"] == "expdecay") & (frame["backend/method"] == "odebench")]
    by_target = cell.set_index("target")
    # the curve: error 2e-4 at 100 NFE, 2e-8 at 1000 NFE (synthetic_rows)
    assert by_target.loc[1e-6, "nfe"] == pytest.approx(100 * 200**0.25)
    assert by_target.loc[1e-4, "nfe"] == pytest.approx(100 * 2**0.25)
    assert np.isnan(by_target.loc[1e-8, "nfe"])
    assert list(frame.columns) == ["problem", "backend/method", "target", "wall_s", "nfe", "reason"]
    assert by_target.loc[1e-8, "reason"].startswith("not reached")
    notes = json.loads((out / "tables" / "equal_accuracy.json").read_text())["notes"]
    assert any("empty cells: not reached" in note for note in notes)
    assert (out / "figures" / "equal_accuracy.png").is_file()


def test_work_precision_lines_differ_in_colour_and_marker_legend_outside():
    drawing = draw("work_precision_nfe", frame_of(synthetic_rows()))
    lines = [line for ax in drawing.figure.axes for line in ax.get_lines()]
    styles = {line.get_label(): (line.get_color(), line.get_marker()) for line in lines}
    assert len(styles) == 2
    assert len({c for c, _ in styles.values()}) == 2 and len({m for _, m in styles.values()}) == 2
    assert drawing.figure.legends and not any(ax.get_legend() for ax in drawing.figure.axes)
    assert drawing.caption.startswith("fewest NFE at error 1e-08")
    assert "expdecay: none reaches it" in drawing.caption


def test_stiff_figures_plot_error_downward():
    drawing = draw("stiff_scd_nfe", frame_of(synthetic_rows()))
    ax = drawing.figure.axes[0]
    assert ax.get_yscale() == "log" and "10^-scd" in ax.get_ylabel()
    ys = sorted(float(y) for line in ax.get_lines() for y in line.get_ydata())
    assert ys == pytest.approx([10**-7.25, 10**-3.5])  # float64 forward solves only


def test_gradient_work_precision_has_a_line_per_library_and_method():
    rows = [row("gradient_accuracy", problem="vdp", backend=backend, gradient=gradient, rtol=rtol,
                grad_error=rtol * factor, nfe_forward=50, nfe_backward=int(20 / rtol**0.2),
                wall_backward_s=1e-3 / rtol**0.2)
            for backend, gradient, factor in (("odebench", "backsolve", 30),
                                              ("odebench", "interpolated", 3),
                                              ("torchdiffeq", "backsolve", 10))
            for rtol in (1e-4, 1e-6, 1e-8, 1e-10)]
    for name in ("gradient_precision_wall", "gradient_precision_nfe"):
        drawing = draw(name, frame_of(rows))
        labels = {line.get_label() for line in drawing.figure.axes[0].get_lines()}
        assert labels == {"odebench/backsolve", "odebench/interpolated",
                          "torchdiffeq/backsolve+reanchor"}
        assert "odebench/interpolated" in drawing.caption


def test_every_figure_returns_its_caption(report):
    out, written = report
    html = (out / "index.html").read_text()
    assert html  # html.py renders FigureFile.caption when it knows the attribute
    frame = frame_of(synthetic_rows())
    for spec in FIGURES:
        selected = frame[frame["study"] == spec.study]
        drawing = spec.draw(points(selected, spec), spec) if not selected.empty else None
        if drawing is not None and spec.study != "models":
            assert drawing.caption.endswith("."), spec.name


def test_a_figure_aggregate_draws_the_median_with_its_spread():
    rows = [row("lorenz_drift", problem="lorenz", gradient="backprop", T=T, params={"seed": seed},
                grad_error=error * T)
            for T in (1.0, 2.0) for seed, error in ((0, 1e-8), (1, 4e-8), (2, 2e-8))]
    spec = next(spec for spec in FIGURES if spec.name == "lorenz_drift")
    with pytest.raises(AmbiguousCellError, match="seed"):
        points(frame_of(rows), spec)
    pooled = dataclasses.replace(spec, aggregate=Aggregate("seed"), values=("grad_error",))
    data = points(frame_of(rows), pooled)
    assert sorted(data["grad_error"]) == pytest.approx([2e-8, 4e-8])
    assert set(data["n_seed"]) == {3}
    drawing = pooled.draw(data, pooled)
    assert drawing.figure.axes[0].collections  # the interquartile range as error bars


# --- gradient_scaling (issue 16.3), stiff equal accuracy (issue 18.2), per_sample (issue 15) ---


def test_gradient_scaling_table_shows_total_wall_and_saved_bytes(report):
    out, _ = report
    header, by_key = table_by_key(out / "tables" / "gradient_scaling.md", 5)
    assert header[:5] == ["axis", "problem", "n_params", "state_dim", "gradient"]
    assert header[5:10] == ["status", "wall_total_s", "wall_forward_s", "wall_backward_s",
                            "saved_bytes"]
    assert by_key[("params", "mlp", "2594", "2", "backprop")]["wall_total_s"] == "0.01"
    assert by_key[("params", "mlp", "2594", "2", "backprop")]["saved_bytes"] == "3714608"  # 1432 x 2594
    assert by_key[("state", "brusselator_2d", "3", "8", "checkpointed")]["wall_forward_s"] == "0.0024"
    assert len(by_key) == 6


def test_gradient_scaling_figure_names_the_winner_per_size_and_the_crossover(report):
    out, written = report
    assert out / "figures" / "gradient_scaling.png" in written["figures"]
    drawing = draw("gradient_scaling", frame_of(scaling_rows()))
    titles = [ax.get_title() for ax in drawing.figure.axes]
    assert titles == ["params (problem=mlp)", "state (problem=brusselator_2d)"]
    assert [ax.get_xlabel() for ax in drawing.figure.axes] == [
        "number of parameters", "state size (numbers in the state)"]
    lines = {line.get_label(): sorted(line.get_xdata().tolist())
             for line in drawing.figure.axes[0].get_lines()}
    assert lines == {"backprop": [18.0, 2594.0], "checkpointed": [18.0, 2594.0]}
    assert "by parameters: 18: backprop (4 ms), 2594: checkpointed (7 ms)" in drawing.caption
    assert "changes between 18 and 2594: backprop -> checkpointed" in drawing.caption
    assert "by state size: 8: checkpointed (9.6 ms); the winner never changes" in drawing.caption


def stiff_curve_rows() -> list[Row]:
    """Two solvers on HIRES: rodas5p from 4 to 8 digits (0.1 s to 1 s), BDF from 5 to 7 digits
    (0.05 s to 0.2 s): at 6 digits BDF needs sqrt(0.05 x 0.2) = 0.1 s and rodas5p
    sqrt(0.1 x 1) = 0.316 s; 8 digits only rodas5p reaches (1 s)."""
    curves = {("odebench", "rodas5p"): ((1e-4, 4.0, 0.1), (1e-8, 8.0, 1.0)),
              ("scipy", "BDF"): ((1e-4, 5.0, 0.05), (1e-8, 7.0, 0.2))}
    return [row("stiff", problem="hires", backend=backend, method=method, rtol=rtol, atol=rtol,
                scd=scd, wall_forward_s=wall, nfe_forward=100)
            for (backend, method), points in curves.items() for rtol, scd, wall in points]


def test_stiff_equal_accuracy_table_interpolates_marks_the_fastest_and_says_why_not(report):
    out, _ = report
    assert (out / "tables" / "stiff_equal_accuracy.csv").is_file()
    table = stiff_equal_accuracy_table(frame_of(stiff_curve_rows()))
    assert list(table.frame.columns) == ["problem", "backend/method", "wall_s @ 6 digits",
                                         "wall_s @ 8 digits", "fastest at"]
    by_line = table.frame.set_index("backend/method")
    assert by_line.loc["odebench/rodas5p", "wall_s @ 6 digits"] == pytest.approx(0.1**0.5)
    assert by_line.loc["odebench/rodas5p", "wall_s @ 8 digits"] == pytest.approx(1.0)
    assert by_line.loc["scipy/BDF", "wall_s @ 6 digits"] == pytest.approx(0.1)
    assert by_line.loc["scipy/BDF", "wall_s @ 8 digits"].startswith("not reached")
    assert list(by_line["fastest at"]) == ["8 digits", "6 digits"]
    assert ("at 6 digits on hires the fastest is scipy/BDF (0.1 s); at 8 digits on hires the "
            "fastest is odebench/rodas5p (1 s)") in table.caption
    long = table.export()
    assert long["fastest"].sum() == 2 and long["wall_s"].isna().sum() == 1


def per_sample_rows() -> list[Row]:
    """Batches 1 and 16: joint steps grow with the batch (its stiffest sample sets the step),
    per-sample ones do not."""
    steps = {("odebench", "joint"): (1200.0, 3600.0), ("odebench", "per_sample"): (1200.0, 900.0),
             ("torchode", "per_sample"): (950.0, 800.0)}
    return [row("per_sample", problem="vdp", backend=backend, T=50.0, batch=batch,
                params={"batching": mode}, wall_forward_s=0.1 * n / 1000, wall_forward_iqr_s=0.01,
                nfe_forward=int(6 * n),
                extra={"batching": mode, "steps_per_sample_mean": n,
                       "steps_per_sample_max": 1200 if mode == "per_sample" else int(n)})
            for (backend, mode), counts in steps.items()
            for batch, n in zip((1, 16), counts, strict=True)]


def test_per_sample_figure_draws_steps_and_wall_and_the_joint_ratio(report):
    out, written = report
    assert out / "figures" / "per_sample.png" in written["figures"]
    drawing = draw("per_sample", frame_of(per_sample_rows()))
    steps_ax, wall_ax = drawing.figure.axes
    labels = {line.get_label() for line in steps_ax.get_lines()}
    assert "odebench/joint (mean)" in labels and "torchode/per_sample (max)" in labels
    assert len(wall_ax.get_lines()) == 3 and wall_ax.get_xscale() == "log"
    assert drawing.caption == (
        "Mean accepted steps per sample at batch 16, the largest with both modes: odebench joint "
        "3600 vs per-sample 900, ratio 4; torchode (per_sample) 800.")


def test_seminorm_table_has_a_cell_per_configuration_and_the_figure_its_saving():
    rows = seminorm_rows()
    spec = next(spec for spec in TABLES if spec.name == "seminorm")
    table = build_table(spec, frame_of(rows))
    assert len(table.frame) == len(rows)
    assert {"backend", "gradient", "seminorm", "rtol", "nfe_backward", "wall_backward_s",
            "grad_error", "steps_backward"} <= set(table.frame.columns)
    assert set(table.frame["gradient"]) == {"backsolve", "backsolve+reanchor",
                                            "backsolve_seminorm+reanchor"}
    assert {"adjoint_norm", "n_params"} <= {name for name, _ in table.fixed}
    twice = [*rows, dataclasses.replace(rows[0], params={**rows[0].params, "adjoint_norm": "x"})]
    assert len(build_table(spec, frame_of(twice)).frame) == len(rows) + 1  # a key, no clash
    drawing = draw("seminorm", frame_of(rows))
    assert "odebench backsolve per_part, atol/rtol 1 40%" in drawing.caption
    assert "torchdiffeq backsolve+reanchor per_part, atol/rtol 1 40%" in drawing.caption
    flat = draw("seminorm", frame_of(seminorm_rows(saving=0.0)))
    assert "odebench backsolve per_part, atol/rtol 1 0%" in flat.caption


def test_per_sample_table_shows_the_wall_spread_it_lists_once():
    spec = next(spec for spec in TABLES if spec.name == "per_sample")
    table = build_table(spec, frame_of(per_sample_rows()))
    columns = list(table.frame.columns)
    assert columns.count("wall_forward_iqr_s") == 1
    assert columns[:4] == ["backend", "batching", "batch", "status"]
    assert table.display()["wall_forward_iqr_s"].tolist() == ["0.01"] * 6


def test_model_claim_rows_have_their_own_cells_and_no_training_curve():
    """The models study's one-step memory rows differ only in their depth (params n_blocks):
    the models table keys on it, and the training-curve figures leave them out (old builder:
    4 rows fed one cell and `odebench report` refused the quick run)."""
    rows = [row("models", model="resnet_memory", problem="digits", method="none",
                gradient="backprop", rtol=None, atol=None, dtype="float32",
                params={"n_blocks": depth}, saved_bytes=1000 * depth) for depth in (1, 2, 4)]
    rows.append(row("models", model="odenet", problem="digits", gradient="backprop",
                    dtype="float32", params={"config": "quick"},
                    extra={"final_loss": 0.1, "nfe_forward_per_iter": [20, 26]}))
    frame = frame_of(rows)
    models = next(spec for spec in TABLES if spec.name == "models")
    shown = build_table(models, frame).frame
    assert sorted(shown.loc[shown["model"] == "resnet_memory", "n_blocks"]) == [1, 2, 4]
    for spec in (s for s in FIGURES if s.name.startswith("models_")):
        assert set(points(frame, spec)["model"]) <= {"odenet"}


def test_work_precision_wall_shows_the_spread_of_the_timed_repeats():
    rows = [row("work_precision", problem="vdp", rtol=rtol, sol_error=rtol, nfe_forward=10,
                wall_forward_s=0.01 / rtol**0.25, wall_forward_iqr_s=0.002 / rtol**0.25,
                n_repeats=5) for rtol in (1e-4, 1e-6, 1e-8)]
    drawing = draw("work_precision_wall", frame_of(rows))
    bars = [c for ax in drawing.figure.axes for c in ax.containers]
    assert bars and "interquartile range of each point's timed repeats" in drawing.caption
    (segments,) = [c.lines[2][0].get_segments() for c in bars]  # the horizontal bars
    widths = sorted(seg[1][0] - seg[0][0] for seg in segments)
    assert widths == pytest.approx(sorted(0.002 / r**0.25 for r in (1e-4, 1e-6, 1e-8)))
    plain = draw("work_precision_wall", frame_of([dataclasses.replace(r, wall_forward_iqr_s=None)
                                                  for r in rows]))
    assert not [c for ax in plain.figure.axes for c in ax.containers]
