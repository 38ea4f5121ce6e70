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
from odebench.report.figures import FIGURES, memory_scaling, models_nfe_ratio, save
from odebench.report.tables import TABLES, TableSpec, build_table, format_value
from odebench.results import ResultsStore, Row

COMMIT = "abc1234-dirty"
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
                params={"mode": mode},
                nfe_forward=7256,
                wall_forward_s=0.4,
                extra={"mode": mode, "steps_per_sample_mean": steps, "steps_per_sample_max": 1199},
            )
        )
    rows.extend(model_rows())
    return rows


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


def markdown_rows(path: Path) -> list[list[str]]:
    """The cells of each table line of a Markdown file."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in path.read_text().splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def test_every_file_is_written(report):
    out, written = report
    assert set(written) == {"tables", "figures", "html"}
    expected_tables = {
        out / "tables" / f"{spec.name}{suffix}"
        for spec in TABLES
        for suffix in (".md", ".csv", ".tex")
    }
    assert set(written["tables"]) == expected_tables
    expected_figures = {
        out / "figures" / f"{name}{suffix}" for name, *_ in FIGURES for suffix in (".png", ".svg")
    }
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
    assert lorenz[0] == ["T", "gradient", "grad_error", "recon_error", "status"]
    assert ["10", "backsolve", "", "", "nonfinite"] in lorenz
    assert ["5", "backsolve", "0.0001", "1e-05", "ok"] in lorenz
    stiff = markdown_rows(out / "tables" / "stiff.md")
    assert stiff[0] == [
        "rtol",
        "atol",
        "dtype",
        "scd",
        "steps",
        "nfe_forward",
        "n_jac",
        "n_lu",
        "wall_forward_s",
        "status",
    ]
    assert ["0.0001", "0.0001", "float64", "3.50", "40", "300", "6", "25"] in [
        line[:8] for line in stiff
    ]
    overhead = markdown_rows(out / "tables" / "overhead.md")
    assert overhead[0] == [
        "problem",
        "backend",
        "overhead_ratio",
        "wall_forward_s",
        "nfe_forward",
        "wall_per_nfe_s",
        "eval_s",
        "status",
    ]
    assert [line[:3] for line in overhead[1:]] == [
        ["expdecay", "odebench", "2.25"],
        ["expdecay", "torchdiffeq", "1.50"],
        ["vdp", "odebench", "2.25"],
        ["vdp", "torchdiffeq", "1.50"],
    ]
    assert overhead[1][3:] == ["0.00585", "26", "0.000225", "0.0001", "ok"]
    title = (out / "tables" / "overhead.md").read_text().splitlines()[0]
    assert "wall / (NFE x one vector-field evaluation)" in title
    memory = markdown_rows(out / "tables" / "memory.md")
    assert ["10", "backprop", "40960", "300000000", "ok"] in memory


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
        "final_loss",
        "nfe_forward",
        "nfe_backward",
        "nfe_backward_over_forward",
        "saved_bytes",
        "train_wall_s",
        "status",
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
    assert header[:5] == ["model", "gradient", "method", "test_error", "n_params"]
    assert {key[0] for key in classifier} == {"odenet", "resnet"}
    assert ("resnet", "backprop", "none") in classifier
    assert classifier[("resnet", "backprop", "none")]["test_error"] == "0.125"
    assert classifier[("odenet", "checkpointed", "dopri5")]["test_error"] == "0.0625"
    assert "scikit-learn digits" in (out / "tables" / "models_classifier.md").read_text()

    header, cnf = table_by_key(out / "tables" / "models_cnf.md", 1)
    assert header[:3] == ["gradient", "test_nll", "n_params"]
    assert cnf[("backprop",)]["test_nll"] == "3.25"
    assert "nats" in (out / "tables" / "models_cnf.md").read_text()
    assert "model = cnf" in (out / "tables" / "models_cnf.md").read_text()  # one model: fixed

    header, latent = table_by_key(out / "tables" / "models_latent.md", 3)
    assert header[3:5] == ["interp_mse", "extrap_mse"]
    assert latent[("gru", "backprop", "none")]["extrap_mse"] == "5"
    assert {key[0] for key in latent} == {"gru", "latent_ode"}

    header, toys = table_by_key(out / "tables" / "models_augmented.md", 2)
    assert header[:4] == ["model", "gradient", "final_mse", "n_params"]
    assert header[4:] == ["nfe_forward", "nfe_backward", "status"]
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
        "scd",
        "steps",
        "nfe_forward",
        "n_jac",
        "n_lu",
        "wall_forward_s",
        "status",
    ]
    assert len(cells) == 2 and cells[1][-7] == "7.25"
    frame = pd.read_csv(out / "tables" / "stiff_targets.csv", comment="#")
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
    assert list(table.frame.columns) == ["gradient", "n_params", "test_error", "status"]
    assert table.fixed == [("model", "odenet")] and table.provenance.rows == 2
    near = TableSpec("s", "s", ("stiff",), ("dtype",), where=(("rtol", (1e-8 * (1 + 1e-12),)),))
    assert len(build_table(near, frame).frame) == 2  # float32 and float64
    nothing = TableSpec("n", "n", ("stiff",), ("dtype",), where=(("rtol", (1.0,)),))
    assert build_table(nothing, frame) is None


def test_model_figures_accept_extra_as_json_text():
    frame = pd.DataFrame([r.to_dict() for r in model_rows()])
    as_text = frame.assign(extra=[json.dumps(extra) for extra in frame["extra"]])
    figure = models_nfe_ratio(as_text)
    assert figure is not None
    assert len(figure.axes[0].patches) >= 10  # a bar per ODE model and gradient


def test_csv_has_comment_header_and_full_precision(report):
    out, _ = report
    path = out / "tables" / "gradient_error.csv"
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# Gradient error")
    assert any(line == f"# commit: {COMMIT}" for line in lines)
    frame = pd.read_csv(path, comment="#")
    backprop = frame[(frame["gradient"] == "backprop") & (frame["study"] == "gradient_accuracy")]
    assert float(backprop["vdp"].iloc[0]) == 1.234e-5


def test_latex_is_booktabs_with_provenance(report):
    out, _ = report
    for spec in TABLES:
        tex = (out / "tables" / f"{spec.name}.tex").read_text()
        assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
        assert f"% commit: {COMMIT}" in tex
        assert "\\caption{" in tex and "abc1234-dirty" in tex.split("\\caption{", 1)[1]
    assert "nfe\\_forward" in (out / "tables" / "nfe.tex").read_text()


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
    asv = Path(os.path.relpath(repo_root / "reports" / "asv" / "index.html", out)).as_posix()
    assert f'href="{asv}"' in html  # reports/asv/index.html of the working directory
    assert "--bind 127.0.0.1" in html
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
    assert f"<figcaption>{TRAINER_PNG.name}</figcaption>" in html
    assert "missing.png" not in html


def test_figure_carries_provenance_footer(tmp_path):
    frame = pd.DataFrame([r.to_dict() for r in synthetic_rows() if r.study == "memory_scaling"])
    provenance = Provenance.from_rows(frame)
    figure = memory_scaling(frame)
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
    assert {p.name for p in written["tables"]} == {"overhead.md", "overhead.csv", "overhead.tex"}
    assert {p.name for p in written["figures"]} == {"overhead.png", "overhead.svg"}
    html = (tmp_path / "out" / "index.html").read_text()
    assert "Lorenz" not in html and "drawn by the trainers" not in html


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
