"""The report page as a reader meets it: order, banner, units, stopped runs, links, definitions."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from odebench.environment import Provenance
from odebench.report import build_report
from odebench.report.cite import REFERENCES, bibtex
from odebench.report.figures import FigureFile
from odebench.report.html import LONG_TABLE_ROWS, dead_links, render_html, write_html
from odebench.report.tables import Table
from odebench.results import ResultsStore, Row

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "feed123"
STAMP = "2024-05-01T12:34:56+00:00"
MACHINE = dict(hostname="testhost", cpu="Test CPU 9000", cores=16, ram_bytes=64 * 2**30,
               os_name="Linux", python="3.11.7", numpy_version="2.4.6", torchode_version="1.0.1",
               torch_version="2.13.0", scipy_version="1.17.1", torchdiffeq_version="0.2.5",
               odebench_version="0.1.0")


def row(study: str, **values) -> Row:
    defaults = dict(problem="decay", backend="odebench", method="dopri5", rtol=1e-6, atol=1e-8,
                    dtype="float64", device="cpu", commit=COMMIT, timestamp=STAMP, **MACHINE)
    return Row(study=study, **{**defaults, **values})


def rows() -> list[Row]:
    out = [row("work_precision", backend=backend, rtol=rtol, sol_error=rtol, nfe_forward=50,
               wall_forward_s=2.5e-3, steps=8, rejected=0)
           for backend in ("odebench", "torchdiffeq") for rtol in (1e-4, 1e-8)]
    out += [row("memory_scaling", problem="mlp", gradient=gradient, T=T, width=16,
                saved_bytes=4_000_000 if gradient == "backprop" else 22_528,
                wall_forward_s=2.5e-3, wall_backward_s=1.5, nfe_forward=26, nfe_backward=25)
            for gradient in ("backprop", "backsolve", "checkpointed") for T in range(1, 7)]
    out.append(row("gradient_accuracy", gradient="backprop", grad_error=1e-7, nfe_forward=40,
                   nfe_backward=39))
    out.append(row("gradient_accuracy", gradient="backsolve", status="max_steps",
                   message="max_num_steps exceeded at t=0.5", nfe_forward=40))
    out += [row("models", problem="digits", model=model, gradient="backprop", rtol=None,
                atol=None, saved_bytes=1000, extra={"test_error": 0.0125, "n_params": n,
                                                    "n_test": 360})
            for model, n in (("odenet", 40_000), ("resnet", 100_000))]
    return out


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, str]:
    results = tmp_path_factory.mktemp("results")
    store = ResultsStore(results)
    for item in rows():
        store.append(item)
    out = tmp_path_factory.mktemp("report")
    build_report(results, out)
    return out, (out / "index.html").read_text()


def section(html: str, name: str) -> str:
    start = html.index(f'id="table-{name}"')
    return html[start:html.index("</section>", start)]


def test_every_relative_link_points_at_a_written_file(page):
    out, html = page
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"'#][^"']*)["']""", html)
    relative = [link for link in links if not re.match(r"[a-z]+:|//", link)]
    assert relative and "tables/claims.md" in relative
    for link in relative:
        assert (out / link).is_file(), link
    assert dead_links(out / "index.html") == []
    assert "asv/index.html" not in html and "odebench serve" in html


def test_dead_link_is_refused(tmp_path):
    provenance = Provenance.from_rows(pd.DataFrame())
    missing = FigureFile("ghost", "Ghost", [tmp_path / "figures" / "ghost.svg"], provenance)
    with pytest.raises(FileNotFoundError, match="figures/ghost.svg"):
        write_html([], [missing], provenance, tmp_path, head="abc")


def test_claims_then_figures_then_tables_then_definitions(page):
    _, html = page
    order = [html.index(f'id="{key}"') for key in
             ("claims", "figures", "tables", "problems", "metrics", "asv", "cite")]
    assert order == sorted(order)
    assert html.index('id="claim-a"') < html.index('id="figures"')


def test_banner_names_commit_machine_software_and_time(page):
    _, html = page
    banner = html[html.index('<header class="banner">'):html.index("</header>")]
    for needle in (COMMIT, "Test CPU 9000", "16 cores", "64.0 GiB RAM", "Python 3.11.7",
                   "numpy 2.4.6", "torch 2.13.0", "scipy 1.17.1", "torchdiffeq 0.2.5",
                   "torchode 1.0.1", "2024-05-01 12:34", "stopped: 1 max_steps"):
        assert needle in banner, needle


def test_banner_names_the_building_head_only_when_it_differs():
    provenance = Provenance.from_rows(pd.DataFrame(
        [r.to_dict() for r in rows()[:1]]))
    other = render_html([], [], provenance, Path("."), head="0ther00")
    assert "page built from HEAD <code>0ther00</code>" in other
    assert "torch threads while timing: not recorded in these rows" in other
    assert "page built from HEAD" not in render_html([], [], provenance, Path("."), head=COMMIT)


def test_units_on_the_page(page):
    _, html = page
    memory = section(html, "memory")
    assert "saved_<wbr>bytes (MB)" in memory and "<td>4</td>" in memory
    assert "<td>0.0225</td>" in memory
    assert "wall_<wbr>backward_<wbr>s (s)" in memory and "<td>1.5</td>" in memory
    assert "wall_<wbr>forward_<wbr>s (ms)" in memory and "<td>2.5</td>" in memory
    assert "22528" not in memory and "4000000" not in memory  # no raw byte counts
    classifier = section(html, "models_classifier")
    assert "test_<wbr>error (%)" in classifier and "<td>1.25</td>" in classifier


def test_long_tables_are_collapsed_with_their_csv(page):
    _, html = page
    memory = section(html, "memory")
    assert memory.count("<tr>") + memory.count("<tr class") > LONG_TABLE_ROWS + 1
    assert "<details><summary>Show all 18 rows</summary>" in memory
    assert 'open the <a href="tables/memory.csv">CSV</a>' in memory
    assert '<div class="scroll"><table>' in memory  # wide tables scroll inside the page


def test_stopped_runs_are_visible(page):
    _, html = page
    nfe = section(html, "nfe")
    stopped = re.search(r"<tr class=failed>(.*?)</tr>", nfe)
    assert stopped and "max_steps" in stopped.group(1)
    header = re.search(r"<thead><tr>(.*?)</tr>", nfe).group(1)
    names = re.findall(r"<th[^>]*>(.*?)</th>", header)
    assert names.index("status") < names.index("nfe_<wbr>forward")  # status is an early column
    grid = section(html, "gradient_error")
    assert '<td class="failed">max_steps</td>' in grid


def test_figure_captions_say_what_they_show(page):
    _, html = page
    caption = re.search(r'id="figure-work_precision_nfe".*?<figcaption>(.*?)</figcaption>',
                        html, re.S).group(1)
    assert "Solution error against forward NFE" in caption
    assert "``" not in caption and ".svg" not in caption.split("Files:")[0]


def test_caption_and_sentence_attributes_are_rendered(tmp_path):
    provenance = Provenance.from_rows(pd.DataFrame())
    (tmp_path / "f.svg").write_text("<svg/>")
    figure = FigureFile("f", "F", [tmp_path / "f.svg"], provenance)
    figure.caption = "Error against NFE, one line per method."
    figure.sentence = "Fewest NFE at error 1e-8: dop853."
    table = Table(name="t", title="T", frame=pd.DataFrame({"gradient": ["backprop"]}), fixed=[],
                  provenance=provenance, studies=("s",), keys=("gradient",))
    table.notes = ["One row per gradient method"]
    table.sentence = "backprop only."
    html = render_html([table], [figure], provenance, tmp_path)
    assert '<p class="sentence">Fewest NFE at error 1e-8: dop853.</p>' in html
    assert "Error against NFE, one line per method." in html
    assert '<p class="sentence">backprop only.</p><p>One row per gradient method.</p>' in html


def test_problem_and_metric_definitions(page):
    _, html = page
    problems = html[html.index('id="problems"'):html.index('id="metrics"')]
    assert "Linear exponential decay" in problems and "closed form" in problems
    assert "(1, -0.5, 2, 0.25)" in problems and "[0, 1]" in problems
    assert "Random tanh MLP" in problems and "T: 1, 2, 3, 4, 5, 6" in problems
    metrics = html[html.index('id="metrics"'):html.index('id="asv"')]
    for name in ("sol_error", "grad_error", "scd", "relative L2", "floor"):
        assert name in metrics


def test_cite_block_and_citation_cff(page):
    _, html = page
    cite = html[html.index('id="cite"'):]
    assert "@software{odebench" in cite and "version = {0.1.0}" in cite
    assert "rm -rf reports/data &amp;&amp; nox -s bench -- --full" in cite
    for key, _ in REFERENCES:
        assert f"{{{key}," in cite
    text = bibtex("1.2.3", "abc1234", "2024")
    assert "version = {1.2.3}" in text and "commit abc1234" in text


def test_citation_cff_is_cff_1_2_0_and_lists_the_references():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors", "version"} <= set(cff)
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(),
                        re.M).group(1)
    assert cff["version"] == version
    assert len(cff["references"]) == len(REFERENCES)
    years = sorted(str(ref["year"]) for ref in cff["references"])
    assert years == sorted(re.search(r"year\s*=\s*\{(\d{4})\}", entry).group(1)
                           for _, entry in REFERENCES)


def test_banner_says_an_exploratory_build_of_several_or_dirty_commits():
    base = rows()[0].to_dict()
    one = Provenance.from_rows(pd.DataFrame([base]))
    assert "Exploratory build" not in render_html([], [], one, Path("."), head=COMMIT)
    mixed = Provenance.from_rows(pd.DataFrame([base, {**base, "commit": "abc1234-dirty"}]))
    banner = render_html([], [], mixed, Path("."), head=COMMIT)
    assert "Exploratory build: these rows come from 2 commits (1 dirty)" in banner
