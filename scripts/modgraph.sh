#!/usr/bin/env bash
# Prints the import graph between src/'s top-level modules (from `use crate::x` and `crate::x::`
# paths, tests included; comments and doc links are not imports) and any cycle in it. Exit status 1 when there is a cycle.
#
#   scripts/modgraph.sh          the edges, then the cycles (or "no cycles")
#   scripts/modgraph.sh --dot    the graph in Graphviz dot
set -euo pipefail
cd "$(dirname "$0")/../src"

# module of a file: src/x.rs and src/x/... -> x; lib.rs and main.rs are the roots.
edges=$(
  for f in $(find . -name '*.rs' | sort); do
    f=${f#./}
    case $f in
      lib.rs|main.rs) from=${f%.rs} ;;
      */*) from=${f%%/*} ;;
      *) from=${f%.rs} ;;
    esac
    # `use crate::{a, b::c}` groups too: every identifier right after `crate::` or after a
    # `{`/`,` inside a `use crate::{...}` list.
    # Comments (doc links included) are not imports.
    sed -E 's@//.*$@@' "$f" | tr '\n' ' ' | grep -oE 'crate::(\{[^}]*|[a-z_]+)' |
      sed -E 's/^crate:://; s/^\{//' | tr ',' '\n' | sed -E 's/^[[:space:]]*//; s/::.*//' |
      grep -E '^[a-z_]+$' | sort -u | while read -r to; do
        [ "$to" != "$from" ] && echo "$from $to"
      done
  done | sort -u
)

if [ "${1:-}" = "--dot" ]; then
  echo "digraph chorus {"
  echo "$edges" | awk 'NF==2 {printf "  \"%s\" -> \"%s\";\n", $1, $2}'
  echo "}"
  exit 0
fi

echo "== imports (module -> modules it uses) =="
echo "$edges" | awk 'NF==2 {a[$1]=a[$1] " " $2} END {for (m in a) print m ":" a[m]}' | sort
echo
echo "== cycles =="
# Strongly connected components (Tarjan), in awk so the script needs nothing else.
echo "$edges" | awk '
NF==2 { adj[$1]=adj[$1] " " $2; nodes[$1]=1; nodes[$2]=1 }
function strong(v,   ws, n, i, w, comp) {
  idx[v]=counter; low[v]=counter; counter++
  stack[++sp]=v; on[v]=1
  n=split(adj[v], ws, " ")
  for (i=1; i<=n; i++) {
    w=ws[i]
    if (!(w in idx)) { strong(w); if (low[w]<low[v]) low[v]=low[w] }
    else if (on[w] && idx[w]<low[v]) low[v]=idx[w]
  }
  if (low[v]==idx[v]) {
    comp=""; size=0
    do { w=stack[sp--]; on[w]=0; comp=comp " " w; size++ } while (w!=v)
    if (size>1) { print "cycle:" comp; found=1 }
  }
}
END {
  counter=0; sp=0; found=0
  for (v in nodes) if (!(v in idx)) strong(v)
  if (!found) print "no cycles"
  exit found
}'
