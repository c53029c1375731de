#!/usr/bin/env bash
# Re-takes docs/screenshots/tui.png: starts a throw-away server, drives two chorus-tui clients
# (alice and bob) in tmux with keys only, captures alice's pane with its colours
# (tmux capture-pane -e), turns the ANSI text into HTML and photographs it with headless
# Chromium. Needs tmux, python3 and chromium; builds debug binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshots/tui.png}"
if [[ -z "${SKIP_BUILD:-}" ]]; then # SKIP_BUILD=1 uses the debug binaries already built
  cargo build --quiet --bin chorus -p chorus
  cargo build --quiet -p chorus-client --bin chorus-tui
fi
tmp="$(mktemp -d)"
sock="chorus-shot-$$"
cleanup() {
  tmux -L "$sock" kill-server 2>/dev/null || true
  [[ -n "${server_pid:-}" ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/uploads"
CHORUS__SERVER__ADDR=127.0.0.1:0 CHORUS__DATABASE__URL="sqlite://$tmp/chorus.db?mode=rwc" \
  CHORUS__UPLOADS__DIR="$tmp/uploads" target/debug/chorus >"$tmp/out.log" 2>"$tmp/err.log" &
server_pid=$!
for _ in $(seq 1 300); do grep -q '^listening on' "$tmp/out.log" 2>/dev/null && break; sleep 0.2; done
url="http://$(sed -n 's/^listening on //p' "$tmp/out.log" | head -1)"

tui() { # name
  tmux -L "$sock" new-session -d -s "$1" -x 100 -y 28 \
    "CHORUS_TUI_CONFIG_DIR=$tmp/$1 TERM=xterm-256color target/debug/chorus-tui --server $url"
}
keys() { tmux -L "$sock" send-keys -t "$1" "${@:2}"; sleep 0.6; }
typed() { tmux -L "$sock" send-keys -t "$1" -l "$2"; sleep 0.4; }
signup() { # name
  keys "$1" 2; typed "$1" "$1"; keys "$1" Enter; typed "$1" "correct horse battery"; keys "$1" Enter
  sleep 2
}
tui alice; tui bob; sleep 1.5
signup alice; signup bob
keys bob a; typed bob alice; keys bob Enter; sleep 1
keys alice n; typed alice rustaceans; keys alice Enter; sleep 1
keys alice Up; keys alice Enter
typed alice "hi bob! the terminal client is up"; keys alice Enter
keys bob Enter; typed bob "hello alice, I see you online"; keys bob Enter
typed bob " (and typing)"; sleep 1
keys alice Escape; sleep 1.5

tmux -L "$sock" capture-pane -e -p -t alice >"$tmp/pane.ansi"
python3 - "$tmp/pane.ansi" "$tmp/pane.html" <<'PY'
import html, re, sys
src = open(sys.argv[1], encoding="utf-8").read()
base = ["#1e1e1e", "#f44747", "#6a9955", "#d7ba7d", "#569cd6", "#c586c0", "#4ec9b0", "#d4d4d4",
        "#808080", "#f44747", "#b5cea8", "#dcdcaa", "#9cdcfe", "#d670d6", "#4ec9b0", "#ffffff"]
def c256(n):
    if n < 16: return base[n]
    if n < 232:
        n -= 16; v = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (v[n // 36], v[n // 6 % 6], v[n % 6])
    g = 8 + (n - 232) * 10; return "#%02x%02x%02x" % (g, g, g)
st = {}
def style():
    fg, bg = st.get("fg", "#d4d4d4"), st.get("bg")
    if st.get("rev"): fg, bg = (bg or "#1e1e1e"), fg
    s = "color:%s;" % fg
    if bg: s += "background:%s;" % bg
    if st.get("b"): s += "font-weight:bold;"
    if st.get("i"): s += "font-style:italic;"
    return s
out = []
for part in re.split(r"(\x1b\[[0-9;]*m)", src):
    m = re.fullmatch(r"\x1b\[([0-9;]*)m", part)
    if not m:
        if part: out.append('<span style="%s">%s</span>' % (style(), html.escape(part)))
        continue
    codes = [int(x) if x else 0 for x in m.group(1).split(";")]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0: st.clear()
        elif c == 1: st["b"] = 1
        elif c == 3: st["i"] = 1
        elif c == 7: st["rev"] = 1
        elif c in (22,): st.pop("b", None)
        elif c == 27: st.pop("rev", None)
        elif 30 <= c <= 37: st["fg"] = base[c - 30]
        elif 90 <= c <= 97: st["fg"] = base[c - 90 + 8]
        elif 40 <= c <= 47: st["bg"] = base[c - 40]
        elif c == 39: st.pop("fg", None)
        elif c == 49: st.pop("bg", None)
        elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
            st["fg" if c == 38 else "bg"] = c256(codes[i + 2]); i += 2
        i += 1
page = """<!doctype html><meta charset=utf-8><style>
body{margin:0;background:#1e1e1e}
pre{margin:0;padding:14px;font:15px/1.12 'DejaVu Sans Mono',monospace;color:#d4d4d4}
</style><pre>%s</pre>""" % "".join(out)
open(sys.argv[2], "w", encoding="utf-8").write(page)
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=960,520 \
  --screenshot="$PWD/$out" "file://$tmp/pane.html" 2>/dev/null
echo "wrote $out"
