"""One static, offline HTML page tying the report's tables and figures together.

The page loads nothing from outside: styles are inline, images and table
files are linked by paths relative to the page. It links to the asv report at
``asv/index.html``, which has to be served over loopback to work. The PNGs the
model trainers drew (listed in the rows' ``extra["figures"]``, relative to the
working directory) are shown in a section of their own when they exist.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from html import escape
from pathlib import Path

from odebench.environment import Provenance
from odebench.report.figures import FigureFile
from odebench.report.tables import Table

__all__ = ["ASV_HREF", "ASV_SERVE_COMMAND", "render_html", "trainer_figures", "write_html"]

#: Where the asv report lives, relative to the page.
ASV_HREF = "asv/index.html"

#: How to serve the asv report (it fetches its data, so file:// does not work).
ASV_SERVE_COMMAND = "python -m http.server 8080 --bind 127.0.0.1 --directory reports/asv"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { border-bottom: 2px solid #444; }
td.text, th.text { text-align: left; }
.provenance { color: #555; font-size: 0.85em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; }
code { background: #f3f3f3; padding: 0.1em 0.3em; }
"""


_TRAINER_ID = "trainer-figures"
_TRAINER_TITLE = "Model figures drawn by the trainers"


def _href(path: Path, base: Path) -> str:
    """``path`` relative to the folder ``base``, with forward slashes."""
    return escape(Path(os.path.relpath(path, base)).as_posix(), quote=True)


def _provenance(provenance: Provenance) -> str:
    parts = " &middot; ".join(
        f"{escape(label)} <b>{escape(text)}</b>" for label, text in provenance.items()
    )
    return f'<p class="provenance">{parts}</p>'


def _table(table: Table, base: Path) -> str:
    display = table.display()
    cls = ["" if right else ' class="text"' for right in table.numeric()]
    head = "".join(
        f"<th{c}>{escape(str(name))}</th>" for c, name in zip(cls, display.columns, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{c}>{escape(cell)}</td>" for c, cell in zip(cls, row, strict=True))
        + "</tr>"
        for row in display.itertuples(index=False)
    )
    links = " ".join(
        f'<a href="{_href(path, base)}">{escape(path.suffix.lstrip("."))}</a>'
        for path in table.files
    )
    fixed = f"<p>Fixed: {escape(table.fixed_text())}</p>" if table.fixed else ""
    return (
        f'<section id="table-{escape(table.name)}"><h3>{escape(table.title)}</h3>'
        f"<p>Studies: {escape(', '.join(table.studies))}. Files: {links}</p>{fixed}"
        f"{_provenance(table.provenance)}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def _figure(figure: FigureFile, base: Path) -> str:
    shown = next((p for p in figure.files if p.suffix == ".svg"), figure.files[0])
    links = " ".join(
        f'<a href="{_href(path, base)}">{escape(path.suffix.lstrip("."))}</a>'
        for path in figure.files
    )
    return (
        f'<section id="figure-{escape(figure.name)}"><h3>{escape(figure.title)}</h3>'
        f'<figure><img src="{_href(shown, base)}" alt="{escape(figure.title, quote=True)}">'
        f"<figcaption>Files: {links}{_provenance(figure.provenance)}</figcaption></figure>"
        "</section>"
    )


def trainer_figures(tables: Sequence[Table]) -> list[Path]:
    """The existing PNG files named in the tables' rows (``extra["figures"]``), once each,
    sorted by file name; paths relative to the working directory as recorded."""
    found = {
        Path(os.path.normpath(path))
        for table in tables
        for path in table.row_figures
        if path.suffix.lower() == ".png" and path.is_file()
    }
    return sorted(found, key=lambda path: (path.name, path.as_posix()))


def _trainer_section(paths: Sequence[Path], base: Path) -> str:
    """The section embedding the trainers' PNGs, captioned with their file names; "" if none."""
    if not paths:
        return ""
    items = "".join(
        f'<figure><img src="{_href(path, base)}" alt="{escape(path.name, quote=True)}">'
        f"<figcaption>{escape(path.name)}</figcaption></figure>"
        for path in paths
    )
    return f'<h2 id="{_TRAINER_ID}">{_TRAINER_TITLE}</h2>\n{items}\n'


def render_html(
    tables: Sequence[Table],
    figures: Sequence[FigureFile],
    provenance: Provenance,
    base: Path,
    asv_href: str = ASV_HREF,
) -> str:
    """The page's HTML; file links are made relative to the folder ``base`` holding it.

    The trainers' PNGs that the tables' rows name and that exist are embedded last.
    """
    trained = trainer_figures(tables)
    toc = "".join(
        [f'<li><a href="#table-{escape(t.name)}">{escape(t.title)}</a></li>' for t in tables]
        + [f'<li><a href="#figure-{escape(f.name)}">{escape(f.title)}</a></li>' for f in figures]
        + ([f'<li><a href="#{_TRAINER_ID}">{_TRAINER_TITLE}</a></li>'] if trained else [])
    )
    empty = "<p>No results rows: nothing to show.</p>" if not tables and not figures else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>odebench report</title><style>{_STYLE}</style></head><body>\n"
        "<h1>odebench report</h1>\n"
        f"<p>Built from the results rows of this run:</p>{_provenance(provenance)}\n"
        f'<p>Benchmark history over commits: <a href="{escape(asv_href, quote=True)}">'
        "asv report</a>. It must be served over loopback, e.g. "
        f"<code>{escape(ASV_SERVE_COMMAND)}</code>, then opened at "
        "<code>127.0.0.1:8080</code>.</p>\n"
        f"{empty}<nav><ul>{toc}</ul></nav>\n"
        f"<h2>Tables</h2>\n{''.join(_table(t, base) for t in tables)}\n"
        f"<h2>Figures</h2>\n{''.join(_figure(f, base) for f in figures)}\n"
        f"{_trainer_section(trained, base)}"
        "</body></html>\n"
    )


def write_html(
    tables: Sequence[Table],
    figures: Sequence[FigureFile],
    provenance: Provenance,
    out_dir: Path,
    asv_href: str = ASV_HREF,
) -> Path:
    """Write ``out_dir/index.html`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    path.write_text(render_html(tables, figures, provenance, out_dir, asv_href), encoding="utf-8")
    return path
