#!/usr/bin/env bash
# Screenshot the published (offline) asv report with headless Chromium, as a person would see it.
#
#   scripts/screenshot_asv.sh [HTML_DIR] [OUT_DIR] [BENCHMARK]
#
#   HTML_DIR   asv's html_dir after `asv publish` + make_offline   (default: reports/asv)
#   OUT_DIR    where the PNGs go                                    (default: reports/asv_screenshots)
#   BENCHMARK  benchmark whose graph page to shoot, e.g. benchmarks.time_forward
#              (default: the first benchmark in index.json whose name contains
#              "time_forward", else the first one)
#
# Serves HTML_DIR on loopback only (python -m http.server --bind 127.0.0.1; the page loads
# its JSON with ajax, so file:// does not work), shoots four of asv's hash routes and stops
# the server on exit:
#   grid.png         index.html#/               (benchmark grid)
#   list.png         index.html#/summarylist    (benchmark list)
#   regressions.png  index.html#/regressions
#   graph.png        index.html#BENCHMARK       (one benchmark's graph)
# Chromium runs with background networking off; a page that still needs the internet shows
# asv's error.html ("Can not determine continental origin of swallow") instead of graphs.
# Needs Debian's chromium (apt-get install -y chromium). Env: CHROMIUM (binary), PORT,
# WAIT_MS (virtual time budget for the page's scripts, default 15000).
set -euo pipefail

HTML_DIR=${1:-reports/asv}
OUT_DIR=${2:-reports/asv_screenshots}
BENCHMARK=${3:-}
PYTHON=${PYTHON:-python3}
WAIT_MS=${WAIT_MS:-15000}

if [[ ! -f "$HTML_DIR/index.html" ]]; then
    echo "error: $HTML_DIR/index.html not found: run asv publish (nox -s bench) first" >&2
    exit 2
fi
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [[ -z "$CHROMIUM" ]]; then
    echo "error: no chromium found: apt-get install -y chromium" >&2
    exit 2
fi
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

if [[ -z "$BENCHMARK" ]]; then
    BENCHMARK=$("$PYTHON" - "$HTML_DIR/index.json" <<'EOF'
import json, sys
names = sorted(json.load(open(sys.argv[1]))["benchmarks"])
preferred = [n for n in names if "time_forward" in n]
print((preferred or names or [""])[0])
EOF
)
fi

PORT=${PORT:-$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')}
SERVER_LOG=$(mktemp)
PROFILE=$(mktemp -d)
"$PYTHON" -m http.server "$PORT" --bind 127.0.0.1 --directory "$HTML_DIR" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$PROFILE" "$SERVER_LOG"
}
trap cleanup EXIT

for _ in $(seq 50); do
    if "$PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/index.html', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.2
done

BASE="http://127.0.0.1:$PORT/index.html"
shoot() {  # shoot NAME.png URL
    local png="$OUT_DIR/$1" url=$2
    rm -f "$png"
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --disable-sync --no-first-run --disable-default-apps \
        --hide-scrollbars --user-data-dir="$PROFILE" --virtual-time-budget="$WAIT_MS" \
        --window-size=1400,900 --screenshot="$png" "$url" >/dev/null 2>&1 || true
    if [[ -s "$png" ]]; then
        echo "$png  <-  $url"
    else
        echo "error: no screenshot for $url" >&2
        return 1
    fi
}

status=0
shoot grid.png "$BASE#/" || status=1
shoot list.png "$BASE#/summarylist" || status=1
shoot regressions.png "$BASE#/regressions" || status=1
if [[ -n "$BENCHMARK" ]]; then
    shoot graph.png "$BASE#$BENCHMARK" || status=1
else
    echo "warning: index.json lists no benchmark: no graph.png" >&2
fi

# What the browser asked the server for: anything missing (404) is a broken offline copy.
if grep -E '" (404|500) ' "$SERVER_LOG" >&2; then
    echo "warning: the page requested files the site does not have (above)" >&2
fi
exit $status
