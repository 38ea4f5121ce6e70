"""The report pipeline on a small synthetic results directory (checks the plumbing, not physics)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from odebench.environment import Provenance
from odebench.report import build_report
from odebench.report.figures import FIGURES, memory_scaling, save
from odebench.report.tables import TABLES, build_table, format_value
from odebench.results import ResultsStore, Row

COMMIT = "abc1234-dirty"
HOST = "testhost"
STAMP = "2024-05-01T12:00:00+00:00"


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
        rows.append(row("overhead", problem=problem, backend="torchdiffeq", overhead_ratio=1.5))
        rows.append(row("overhead", problem=problem, overhead_ratio=2.25))
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
    for rtol in (1e-4, 1e-7):
        rows.append(
            row(
                "stiff",
                problem="robertson",
                method="radau",
                rtol=rtol,
                atol=rtol,
                scd=3.5,
                steps=40,
                nfe_forward=300,
                n_jac=6,
                n_lu=25,
                wall_forward_s=0.02,
            )
        )
    for gradient in ("backprop", "backsolve"):
        rows.append(
            row(
                "models",
                problem="two_moons",
                model="cnf",
                gradient=gradient,
                dtype="float32",
                extra={"final_loss": 1.375, "test_metric": 0.875, "history": [3.0, 2.0]},
            )
        )
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    results = tmp_path_factory.mktemp("results")
    store = ResultsStore(results)
    for item in synthetic_rows():
        store.append(item)
    out = tmp_path_factory.mktemp("report")
    return out, build_report(results, out)


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
    cells = markdown_rows(out / "tables" / "gradient_error.md")
    header = cells[0]
    assert header == ["study", "gradient", "expdecay", "vdp"]
    by_key = {tuple(line[:2]): dict(zip(header[2:], line[2:], strict=True)) for line in cells[1:]}
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
    models = markdown_rows(out / "tables" / "models.md")
    assert models[0][:4] == ["gradient", "final_loss", "test_metric", "status"]
    assert models[1][:4] == ["backprop", "1.38", "0.875", "ok"]
    stiff = markdown_rows(out / "tables" / "stiff.md")
    assert stiff[0] == [
        "rtol",
        "atol",
        "scd",
        "steps",
        "nfe_forward",
        "n_jac",
        "n_lu",
        "wall_forward_s",
        "status",
    ]
    assert stiff[1][2:7] == ["3.50", "40", "300", "6", "25"]
    overhead = markdown_rows(out / "tables" / "overhead.md")
    assert overhead[1:] == [["odebench", "2.25", "2.25"], ["torchdiffeq", "1.50", "1.50"]]
    memory = markdown_rows(out / "tables" / "memory.md")
    assert ["10", "backprop", "40960", "300000000", "ok"] in memory


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


def test_html_is_offline_and_ties_everything(report):
    out, written = report
    html = (out / "index.html").read_text()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, flags=re.IGNORECASE)
    assert links
    assert not [link for link in links if re.match(r"\s*(https?:)?//", link, re.IGNORECASE)]
    for link in links:
        if not link.startswith("#"):
            assert not Path(link).is_absolute()
    assert 'href="asv/index.html"' in html
    assert "--bind 127.0.0.1" in html
    for path in written["figures"]:
        if path.suffix == ".svg":
            assert f'src="figures/{path.name}"' in html
    for path in written["tables"]:
        assert f'href="tables/{path.name}"' in html
    assert COMMIT in html and HOST in html and "2024-05-01" in html
    assert "<td>1.23e-05</td>" in html and "max_steps" in html


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
    assert "Lorenz" not in (tmp_path / "out" / "index.html").read_text()


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
