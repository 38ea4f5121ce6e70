"""make_offline: asv's published site must load nothing from outside (no chromium, no asv run)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

from odebench.report.asv_html import (
    ExternalReferenceError,
    find_external_references,
    main,
    make_offline,
)

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "vendor" / "asv"

# src=/href= values of <script>/<link> tags, read with a plain regex (independent of the module)
_TAG_REF = re.compile(r"<(script|link)\b[^>]*?\s(src|href)\s*=\s*[\"']([^\"']*)[\"']", re.I | re.S)


def _installed(name: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None


def _asv_www() -> Path | None:
    spec = _installed("asv")
    if spec is None or not spec.submodule_search_locations:
        return None
    www = Path(next(iter(spec.submodule_search_locations))) / "www"
    return www if (www / "index.html").is_file() else None


def _synthetic_index() -> str:
    """asv 0.6.6's <head> in miniature: every CDN tag of the manifest, as asv writes them."""
    tags = []
    for entry in _manifest():
        url = entry["url"]
        if url.endswith(".css"):
            tags.append(f'<link rel="stylesheet" href="{url}" integrity="sha256-x" crossorigin="anonymous">')
        else:
            tags.append(
                f'<script src="{url}" integrity="sha512-x" crossorigin="anonymous" '
                'referrerpolicy="no-referrer" onerror="js_load_failure()"></script>'
            )
    return (
        "<!doctype html>\n<html>\n  <head>\n"
        '    <meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n    '
        + "\n    ".join(tags)
        + '\n    <script language="javascript" type="text/javascript"\n'
        '            src="asv.js">\n    </script>\n'
        '    <link href="asv.css" rel="stylesheet" type="text/css"/>\n'
        '    <link rel="alternate" type="application/atom+xml" href="regressions.xml"/>\n'
        "  </head>\n  <body>\n"
        '    <a href="https://github.com/airspeed-velocity/asv/" class="navbar-link">asv</a>\n'
        "  </body>\n</html>\n"
    )


@pytest.fixture(params=["asv-template", "synthetic"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A fake published asv site: asv's own template as `asv publish` copies it (skipped when
    asv is not installed), or a synthetic page with the same external tags."""
    dest = tmp_path / "asv"
    if request.param == "asv-template":
        www = _asv_www()
        if www is None:
            pytest.skip("asv is not installed: no www/ template to copy")
        shutil.copytree(www, dest)
    else:
        dest.mkdir()
        (dest / "index.html").write_text(_synthetic_index())
        for name in ("asv.js", "asv.css", "error.html"):
            (dest / name).write_text("")
    for name in ("index.json", "regressions.json", "info.json"):
        (dest / name).write_text("{}")
    (dest / "regressions.xml").write_text("<feed/>")
    return dest


def _manifest() -> list[dict]:
    return json.loads((VENDOR / "manifest.json").read_text())["files"]


def test_template_is_external_before(site: Path) -> None:
    # the premise: asv's page loads its libraries from CDNs
    refs = find_external_references(site)
    urls = {r.url for r in refs}
    assert {e["url"] for e in _manifest()} == urls


def test_make_offline_leaves_no_external_reference(site: Path) -> None:
    replaced = make_offline(site, VENDOR)
    assert sorted(replaced) == sorted(e["url"] for e in _manifest())

    html = (site / "index.html").read_text()
    refs = _TAG_REF.findall(html)
    assert refs, "no script/link tags found"
    for _tag, _attr, url in refs:
        assert not re.match(r"(https?:)?//", url, re.I), url
        assert (site / url).is_file(), f"{url} does not exist in the site"
    assert "integrity=" not in html
    assert "crossorigin" not in html
    assert "referrerpolicy" not in html
    # asv's failure hook stays, so a missing local file still shows error.html
    assert html.count('onerror="js_load_failure()"') == len(_manifest()) - 1  # css has none

    # vendored files and their licences are in the site
    for entry in _manifest():
        assert (site / "vendor" / entry["path"]).is_file()
        assert f'"vendor/{entry["path"]}"' in html
    assert list((site / "vendor").rglob("LICENSE*"))
    assert find_external_references(site) == []

    # idempotent: a second pass changes nothing
    assert make_offline(site, VENDOR) == []
    assert (site / "index.html").read_text() == html


def test_hyperlinks_are_not_loads(site: Path) -> None:
    make_offline(site, VENDOR)
    # asv's navbar links to its GitHub page: a hyperlink, not a resource the page loads
    assert 'href="https://github.com/airspeed-velocity/asv/"' in (site / "index.html").read_text()


@pytest.mark.parametrize(
    "tag",
    [
        '<script src="https://cdn.example.invalid/extra.js"></script>',
        '<script src="//cdn.example.invalid/extra.js"></script>',
        '<link rel="stylesheet" href="http://cdn.example.invalid/extra.css">',
        '<img src="HTTPS://cdn.example.invalid/logo.png">',
        '<style>body { background: url("https://cdn.example.invalid/bg.png"); }</style>',
    ],
)
def test_unknown_external_reference_raises(site: Path, tag: str) -> None:
    index = site / "index.html"
    index.write_text(index.read_text().replace("</head>", tag + "\n</head>"))
    with pytest.raises(ExternalReferenceError) as info:
        make_offline(site, VENDOR)
    assert "cdn.example.invalid" in str(info.value)
    assert "index.html" in str(info.value)
    assert len(info.value.references) == 1
    assert isinstance(info.value, RuntimeError)


def test_external_reference_in_other_html_file_raises(site: Path) -> None:
    (site / "extra.html").write_text(
        '<html><head><script src="https://cdn.example.invalid/x.js"></script></head></html>'
    )
    with pytest.raises(ExternalReferenceError, match="extra.html"):
        make_offline(site, VENDOR)


def test_missing_site_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        make_offline(tmp_path / "nothing", VENDOR)


def test_vendored_files_match_manifest() -> None:
    for entry in _manifest():
        data = (VENDOR / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
    assert (VENDOR / "README.md").is_file()


def test_cli(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(site), "--check-only"]) == 1
    assert main([str(site), "--vendor", str(VENDOR)]) == 0
    assert "no external references left" in capsys.readouterr().out
    assert main([str(site), "--check-only"]) == 0


# --------------------------------------------------------------------------- the nox gate's parser

_COMPARE_OUTPUT = """
Benchmarks that have improved:

| Change   | Before [0593b5ff] <main~1>   | After [1a920bc3] <main>   |   Ratio | Benchmark (Parameter)                            |
|----------|------------------------------|---------------------------|---------|--------------------------------------------------|
| -        | 60.8±10ms                    | 51.0±0ms                  |    0.84 | benchmarks.Forward.time_forward('mlp', 'dop853') |

Benchmarks that have stayed the same:

| Change   | Before [0593b5ff] <main~1>   | After [1a920bc3] <main>   | Ratio   | Benchmark (Parameter)                                    |
|----------|------------------------------|---------------------------|---------|----------------------------------------------------------|
|          | 25.0±2ms                     | 24.6±0ms                  | 0.98    | benchmarks.Forward.time_forward('mlp', 'dopri5')         |
|          | failed                       | failed                    | n/a     | benchmarks.GradientAccuracy.track_grad_error('backprop') |

Benchmarks that have got worse:

| Change   |   Before [a25126a6] <main~1> |   After [8d7148a4] <main> |   Ratio | Benchmark (Parameter)                                    |
|----------|------------------------------|---------------------------|---------|----------------------------------------------------------|
| +        |                          281 |                       845 |    3.01 | benchmarks.Forward.track_nfe_forward('lorenz', 'dop853') |
| !        | 90.8±10ms                    | failed                    | n/a     | benchmarks.ForwardBackward.time_forward_backward('backsolve') |
"""  # noqa: E501


def test_nox_parse_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    if _installed("nox") is None:  # CI's [test] extra has no nox: stub it
        stub = types.SimpleNamespace(
            session=lambda **_: lambda f: f, options=types.SimpleNamespace(), Session=object
        )
        monkeypatch.setitem(sys.modules, "nox", stub)
    spec = importlib.util.spec_from_file_location("odebench_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)

    rows = noxfile.parse_compare(_COMPARE_OUTPUT)
    assert [r["mark"] for r in rows] == ["-", "", "", "+", "!"]
    worse = [r for r in rows if r["mark"] == "+"]
    assert worse == [
        {
            "mark": "+",
            "before": "281",
            "after": "845",
            "ratio": "3.01",
            "benchmark": "benchmarks.Forward.track_nfe_forward('lorenz', 'dop853')",
        }
    ]
    assert noxfile.parse_compare("") == []


# --------------------------------------------------------------------------- log scale, serving


def _publish_index(site: Path) -> None:
    """index.json as asv publish writes it: one error benchmark, one count."""
    (site / "index.json").write_text(json.dumps({"benchmarks": {
        "benchmarks.GradientAccuracy.track_grad_error": {"unit": "relative L2", "type": "track"},
        "benchmarks.Forward.track_nfe_forward": {"unit": "evaluations", "type": "track"},
    }}))


def test_error_benchmarks_open_on_a_log_scale(site: Path) -> None:
    _publish_index(site)
    make_offline(site, VENDOR)
    script = (site / "odebench_log_scale.js").read_text()
    assert '["benchmarks.GradientAccuracy.track_grad_error"]' in script
    assert "y-axis-scale=log" in script and "track_nfe_forward" not in script
    index = (site / "index.html").read_text()
    assert index.count('<script src="odebench_log_scale.js"></script>') == 1
    make_offline(site, VENDOR)  # idempotent
    assert (site / "index.html").read_text().count("odebench_log_scale.js") == 1


def test_no_error_benchmark_no_script(site: Path) -> None:
    make_offline(site, VENDOR)  # index.json is {}
    assert not (site / "odebench_log_scale.js").exists()
    assert "odebench_log_scale.js" not in (site / "index.html").read_text()


def test_serve_binds_loopback_and_serves_the_site(site: Path) -> None:
    import threading
    import urllib.request

    from odebench.report.serve import HOST, make_server, urls

    _publish_index(site)
    with make_server(site, 0) as server:
        assert server.server_address[0] == HOST == "127.0.0.1"
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.json", timeout=10) as r:
                assert "track_grad_error" in r.read().decode()
        finally:
            server.shutdown()
            thread.join(timeout=10)
    assert urls(site, port) == [
        f"http://127.0.0.1:{port}/",
        f"http://127.0.0.1:{port}/#benchmarks.GradientAccuracy.track_grad_error?y-axis-scale=log",
    ]


def test_serve_refuses_a_folder_without_a_page(tmp_path: Path) -> None:
    from odebench.cli import main as odebench_main
    from odebench.errors import InvalidInputError
    from odebench.report.serve import make_server

    with pytest.raises(InvalidInputError, match="nox -s bench"):
        make_server(tmp_path, 0)
    assert odebench_main(["serve", "--dir", str(tmp_path), "--port", "0"]) == 2
