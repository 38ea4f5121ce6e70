"""Make asv's published HTML report work offline.

asv 0.6.6's ``index.html`` loads jQuery, flot, bootstrap and friends from CDNs.
The files are vendored once in ``vendor/asv/`` (see its README.md and
manifest.json). After ``asv publish``::

    python -m odebench.report.asv_html reports/asv

copies them into ``reports/asv/vendor/``, points every ``<script src>`` /
``<link href>`` listed in the manifest at the local copy (dropping ``integrity``,
``crossorigin`` and ``referrerpolicy``), and then fails if any ``.html`` file of
the site still loads anything from outside (``http:``, ``https:`` or
protocol-relative ``//``).

Plain hyperlinks (``<a href="https://…">``) are not loads and are allowed.

asv 0.6.6 has no per-benchmark axis setting (its graphs take ``?y-axis-scale=log`` in the
address). ``make_offline`` also writes ``odebench_log_scale.js`` into the site and loads it
from ``index.html``: it opens the graph of every benchmark whose ``unit`` is in
``LOG_SCALE_UNITS`` (the gradient errors) on a log y axis; the log button still turns it off.

Only the standard library is used here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

try:  # keep the error in odebench's hierarchy when the package imports
    from odebench.errors import OdeBenchError as _Base
except Exception:  # pragma: no cover - only while the package is half-written
    _Base = Exception

__all__ = [
    "ExternalReferenceError",
    "ExternalReference",
    "LOG_SCALE_UNITS",
    "log_scale_benchmarks",
    "log_scale_by_default",
    "make_offline",
    "find_external_references",
    "load_manifest",
    "default_vendor_dir",
    "main",
]

#: Sub-folder of the published site that receives the vendored files.
SITE_VENDOR_DIR = "vendor"

#: Units of benchmarks that are errors (spanning decades): their graphs open on a log axis.
LOG_SCALE_UNITS = ("relative L2",)

#: The script that opens those graphs on a log axis; ``@NAMES@`` becomes a JSON list.
LOG_SCALE_SCRIPT = "odebench_log_scale.js"
_LOG_SCALE_JS = """// written by odebench.report.asv_html: these benchmarks' graphs open on a log y axis
(function () {
  var names = @NAMES@;
  var last = null;
  function apply() {
    var hash = window.location.hash.replace(/^#\\/?/, "");
    var name = decodeURIComponent(hash.split("?")[0]);
    var arrived = name !== last;
    last = name;
    if (!arrived || names.indexOf(name) < 0 || /[?&]y-axis-scale=/.test(hash)) { return; }
    window.location.replace("#" + hash + (hash.indexOf("?") < 0 ? "?" : "&") + "y-axis-scale=log");
  }
  window.addEventListener("hashchange", apply);
  apply();
})();
"""

_EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]*)\1\s*\)|@import\s+(['"])([^'"]*)\3""", re.I)
_DROP_ATTRS = ("integrity", "crossorigin", "referrerpolicy")
# attributes whose value is fetched by the browser when the element is parsed
_LOADING_ATTRS = ("src", "srcset", "data", "poster", "background", "action", "formaction")


class ExternalReferenceError(_Base, RuntimeError):
    """The published site still references an external resource."""

    def __init__(self, message: str, references: list[ExternalReference] | None = None):
        super().__init__(message)
        self.references = list(references or [])


@dataclass(frozen=True)
class ExternalReference:
    file: str  # path relative to the site root
    line: int
    tag: str
    attr: str
    url: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: <{self.tag} {self.attr}={self.url!r}>"


def is_external(url: str | None) -> bool:
    """True for http:, https: and protocol-relative ``//`` URLs."""
    return bool(url) and bool(_EXTERNAL.match(url))


def default_vendor_dir() -> Path:
    """``vendor/asv`` of the source checkout (falls back to ./vendor/asv)."""
    here = Path(__file__).resolve().parents[2] / "vendor" / "asv"
    if (here / "manifest.json").is_file():
        return here
    return Path.cwd() / "vendor" / "asv"


def load_manifest(vendor_dir: Path) -> dict[str, str]:
    """Map of CDN URL -> vendored path (relative to ``vendor_dir``)."""
    vendor_dir = Path(vendor_dir)
    manifest = vendor_dir / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"vendor_dir {vendor_dir} has no manifest.json")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    mapping: dict[str, str] = {}
    for entry in data["files"]:
        path = vendor_dir / entry["path"]
        if not path.is_file():
            raise FileNotFoundError(f"manifest.json names {entry['path']}, missing in {vendor_dir}")
        mapping[_normalise(entry["url"])] = entry["path"]
    return mapping


def _normalise(url: str) -> str:
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    if url.lower().startswith("http://"):
        url = "https://" + url[7:]
    return url


# --------------------------------------------------------------------------- parsing


@dataclass
class _Tag:
    tag: str
    attrs: list[tuple[str, str | None]]
    line: int
    offset: int  # character offset of '<' in the document
    text: str  # the raw start tag


class _Collector(HTMLParser):
    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[_Tag] = []
        self.style_blocks: list[tuple[int, str]] = []  # (line, css text)
        self._line_starts = [0]
        for m in re.finditer("\n", source):
            self._line_starts.append(m.end())
        self._in_style = False

    def _offset(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def handle_starttag(self, tag, attrs):
        self.tags.append(_Tag(tag, attrs, self.getpos()[0], self._offset(), self.get_starttag_text() or ""))
        if tag == "style":
            self._in_style = True

    def handle_startendtag(self, tag, attrs):
        self.tags.append(_Tag(tag, attrs, self.getpos()[0], self._offset(), self.get_starttag_text() or ""))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style_blocks.append((self.getpos()[0], data))


def _parse(source: str) -> _Collector:
    parser = _Collector(source)
    parser.feed(source)
    parser.close()
    return parser


def _css_urls(css: str) -> list[str]:
    return [m.group(2) if m.group(2) is not None else m.group(4) for m in _CSS_URL.finditer(css)]


def _tag_references(tag: _Tag) -> list[tuple[str, str]]:
    """(attribute, url) pairs of a start tag that the browser would load."""
    refs: list[tuple[str, str]] = []
    for name, value in tag.attrs:
        if value is None:
            continue
        name = name.lower()
        if name in _LOADING_ATTRS:
            if name == "srcset":
                refs.extend((name, part.strip().split(" ")[0]) for part in value.split(","))
            else:
                refs.append((name, value))
        elif name == "href" and tag.tag in ("link", "base", "image", "use"):
            refs.append((name, value))
        elif name == "style":
            refs.extend(("style", u) for u in _css_urls(value))
        elif name == "content" and tag.tag == "meta":
            m = re.search(r"url\s*=\s*(\S+)", value, re.I)
            if m and any(k == "http-equiv" and (v or "").lower() == "refresh" for k, v in tag.attrs):
                refs.append(("content", m.group(1)))
    return refs


def find_external_references(html_dir: Path) -> list[ExternalReference]:
    """Every external resource load left in the ``.html`` and ``.css`` files of a site."""
    html_dir = Path(html_dir)
    found: list[ExternalReference] = []
    for path in sorted(html_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(html_dir).as_posix()
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            source = path.read_text(encoding="utf-8", errors="replace")
            parsed = _parse(source)
            for tag in parsed.tags:
                for attr, url in _tag_references(tag):
                    if is_external(url):
                        found.append(ExternalReference(rel, tag.line, tag.tag, attr, url.strip()))
            for line, css in parsed.style_blocks:
                for url in _css_urls(css):
                    if is_external(url):
                        found.append(ExternalReference(rel, line, "style", "url", url.strip()))
        elif suffix == ".css":
            css = path.read_text(encoding="utf-8", errors="replace")
            for url in _css_urls(css):
                if is_external(url):
                    line = css.count("\n", 0, css.find(url)) + 1
                    found.append(ExternalReference(rel, line, "css", "url", url.strip()))
    return found


# --------------------------------------------------------------------------- rewriting


def _rewrite_tag(text: str, attr: str, new_url: str) -> str:
    attr_re = re.compile(r"(\s" + attr + r"\s*=\s*)(\"[^\"]*\"|'[^']*'|[^\s>]+)", re.IGNORECASE)
    text, n = attr_re.subn(lambda m: f'{m.group(1)}"{new_url}"', text, count=1)
    if n != 1:  # pragma: no cover - the parser saw the attribute, so it is there
        raise ValueError(f"could not rewrite {attr} in {text!r}")
    for name in _DROP_ATTRS:
        text = re.sub(
            r"\s" + name + r"(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?(?=[\s/>])",
            "",
            text,
            flags=re.IGNORECASE,
        )
    return text


def _rewrite_html(path: Path, site_vendor: Path, mapping: dict[str, str]) -> list[str]:
    source = path.read_text(encoding="utf-8")
    parsed = _parse(source)
    edits: list[tuple[int, str, str]] = []  # (offset, old tag text, new tag text)
    replaced: list[str] = []
    for tag in parsed.tags:
        if tag.tag == "script":
            attr = "src"
        elif tag.tag == "link":
            attr = "href"
        else:
            continue
        url = dict((k.lower(), v) for k, v in tag.attrs).get(attr)
        if not is_external(url):
            continue
        local = mapping.get(_normalise(url))
        if local is None:
            continue  # left for the final scan to report
        target = site_vendor / local
        rel = os.path.relpath(target, path.parent).replace(os.sep, "/")
        edits.append((tag.offset, tag.text, _rewrite_tag(tag.text, attr, rel)))
        replaced.append(url.strip())
    for offset, old, new in sorted(edits, reverse=True):
        if source[offset : offset + len(old)] != old:  # pragma: no cover - defensive
            raise RuntimeError(f"{path}: tag moved while rewriting: {old!r}")
        source = source[:offset] + new + source[offset + len(old) :]
    if edits:
        path.write_text(source, encoding="utf-8")
    return replaced


def make_offline(html_dir: Path, vendor_dir: Path) -> list[str]:
    """Make a published asv site load nothing from outside.

    Copies ``vendor_dir`` to ``html_dir/vendor``, rewrites every external
    ``<script src>`` / ``<link href>`` found in ``vendor_dir/manifest.json`` to its
    local copy (relative path, ``integrity``/``crossorigin``/``referrerpolicy``
    dropped), then scans every ``.html`` (and ``.css``) file of the site.

    Returns the external URLs that were replaced (in document order, per file).
    Raises ``ExternalReferenceError`` listing file, line and URL if any external
    resource reference is left, ``FileNotFoundError`` if a directory or vendored
    file is missing.
    """
    html_dir = Path(html_dir)
    vendor_dir = Path(vendor_dir)
    if not (html_dir / "index.html").is_file():
        raise FileNotFoundError(f"{html_dir} has no index.html: run `asv publish` first")
    mapping = load_manifest(vendor_dir)

    site_vendor = html_dir / SITE_VENDOR_DIR
    if site_vendor.resolve() != vendor_dir.resolve():
        shutil.copytree(vendor_dir, site_vendor, dirs_exist_ok=True)

    replaced: list[str] = []
    for path in sorted(html_dir.rglob("*.htm*")):
        if path.is_file() and path.suffix.lower() in (".html", ".htm"):
            if site_vendor in path.parents:
                continue  # vendored examples/docs are not part of the report
            replaced.extend(_rewrite_html(path, site_vendor, mapping))

    log_scale_by_default(html_dir)
    left = find_external_references(html_dir)
    if left:
        lines = "\n  ".join(str(r) for r in left)
        raise ExternalReferenceError(
            f"{len(left)} external reference(s) left in {html_dir} after make_offline "
            f"(vendor them into {vendor_dir} and add them to its manifest.json):\n  {lines}",
            left,
        )
    return replaced


def log_scale_benchmarks(html_dir: Path, units: tuple[str, ...] = LOG_SCALE_UNITS) -> list[str]:
    """Names of the published benchmarks (``index.json``) whose unit is one of ``units``."""
    try:
        index = json.loads((Path(html_dir) / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    benchmarks = index.get("benchmarks") if isinstance(index, dict) else None
    return sorted(name for name, info in (benchmarks or {}).items()
                  if isinstance(info, dict) and info.get("unit") in units)


def log_scale_by_default(html_dir: Path) -> list[str]:
    """Write ``LOG_SCALE_SCRIPT`` for the error benchmarks and load it from ``index.html``
    (once). Returns the benchmark names; writes nothing when there are none."""
    html_dir = Path(html_dir)
    names = log_scale_benchmarks(html_dir)
    if not names:
        return []
    script = _LOG_SCALE_JS.replace("@NAMES@", json.dumps(names))
    (html_dir / LOG_SCALE_SCRIPT).write_text(script, encoding="utf-8")
    index = html_dir / "index.html"
    page = index.read_text(encoding="utf-8")
    tag = f'<script src="{LOG_SCALE_SCRIPT}"></script>'
    if tag not in page:
        page = page.replace("</body>", f"  {tag}\n</body>", 1) if "</body>" in page \
            else page + tag + "\n"
        index.write_text(page, encoding="utf-8")
    return names


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m odebench.report.asv_html",
        description="Rewrite a published asv site (asv publish) to use vendored JS/CSS, "
        "and fail if it still loads anything from outside.",
    )
    parser.add_argument("html_dir", type=Path, help="asv's html_dir, e.g. reports/asv")
    parser.add_argument(
        "--vendor",
        type=Path,
        default=None,
        help="folder with the vendored files and manifest.json (default: vendor/asv)",
    )
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="only scan for external references, change nothing",
    )
    args = parser.parse_args(argv)
    try:
        if args.check_only:
            left = find_external_references(args.html_dir)
            if left:
                raise ExternalReferenceError(
                    "external references:\n  " + "\n  ".join(str(r) for r in left), left
                )
            print(f"{args.html_dir}: no external references")
            return 0
        replaced = make_offline(args.html_dir, args.vendor or default_vendor_dir())
    except (ExternalReferenceError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.html_dir}: {len(replaced)} external reference(s) now local; no external references left")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
