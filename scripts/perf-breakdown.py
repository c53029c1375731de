#!/usr/bin/env python3
"""Reads `perf script` output (DWARF call chains) and says where a Chorus node's CPU time went.

Two views, both as shares of all samples:
- components: each sample goes to the first frame, walking from the leaf up, that belongs to a
  known part (SQLite's C code, a Rust crate, or a Chorus module); libc and kernel frames are
  skipped so that malloc and syscalls count for whoever called them;
- inclusive: the share of samples with a given Chorus function anywhere on the stack.

    perf script -i target/bench/chorus.perf | python3 scripts/perf-breakdown.py
Standard library only.
"""
import collections
import re
import sys

# Chorus functions whose inclusive share is shown, in this order (a regex each).
INCLUSIVE = [
    ("commit::run (the group-commit writer task)", r"chorus::commit::run\b"),
    ("commit::commit (one batch)", r"chorus::commit::commit\b"),
    ("commit::resolve (recipients exist?)", r"chorus::commit::resolve\b"),
    ("store::ensure_conversation", r"ensure_conversation"),
    ("store::append_batch (the batch transaction)", r"append_batch"),
    ("  find_sent (duplicate lookup, ORed pairs)", r"find_sent"),
    ("  bump_seq (per-conversation counters)", r"bump_seq"),
    ("  insert_many / exec_with_returning (the rows)", r"insert_many|InsertMany|exec_insert|Insert<"),
    ("sea-query statement building (anywhere)", r"sea_query::"),
    ("sqlx (any thread: the writer's awaits and the SQLite worker thread)", r"sqlx_core::|sqlx_sqlite::|sqlx_postgres::"),
    ("App::deliver_local (frame + hub push)", r"deliver_local"),
    ("ServerFrame serialization", r"chorus::frame::.*Serialize|ServerFrame.*to_text|to_text"),
    ("ws::recv::recv_proc (socket -> dispatch)", r"chorus::ws::recv::recv_proc"),
    ("  ClientFrame parsing", r"chorus::frame::.*Deserialize"),
    ("  dispatch::handle", r"chorus::dispatch::"),
    ("ws::send::send_proc (queue -> socket)", r"chorus::ws::send::send_proc"),
    ("hub (queues, settle)", r"chorus::hub::"),
    ("tungstenite (ws framing)", r"tungstenite::"),
    ("malloc/free (anywhere)", r"^(malloc|_int_malloc|_int_free|cfree|free|malloc_consolidate|unlink_chunk|realloc|_int_realloc|__libc_malloc|__GI___libc_malloc|__GI___libc_free)\b"),
    ("kernel (anywhere)", r"^\[k\]"),
]

FRAME = re.compile(r"^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")


def samples(lines):
    """Yields (thread, frames) with frames leaf first as (symbol, dso)."""
    thread, frames = None, []
    for line in lines:
        if not line.strip():
            if thread is not None:
                yield thread, frames
            thread, frames = None, []
            continue
        if not line.startswith(("\t", " ")):
            thread = line.split()[0]
            frames = []
            continue
        m = FRAME.match(line)
        if m:
            sym, dso = m.group(1), m.group(2)
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            frames.append(("[k] " + sym if "kernel" in dso else sym, dso))
    if thread is not None:
        yield thread, frames


# First path segments that are not crates (impls on references, primitives, generics).
NOT_CRATES = {"core", "alloc", "std", "hashbrown", "T", "F", "u8", "u16", "u32", "u64", "usize",
              "i64", "str", "char", "bool", "__rustc", "dyn", "mut", "&", ""}


def crate_of(sym):
    # `<a::b as c::d>::f` → the implementing type's path; `a::b::f` → a.
    s = sym.lstrip("<&").replace("mut ", "").replace("dyn ", "").lstrip("&")
    path = re.split(r"[ <>(]", s, maxsplit=1)[0]
    parts = path.split("::")
    if parts[0] == "chorus" and len(parts) > 2:
        return "chorus::" + parts[1] + ("::" + parts[2] if parts[1] in ("ws", "store", "http", "cluster") and len(parts) > 3 else "")
    return parts[0]


def component(frames):
    for sym, dso in frames:
        if sym.startswith("[k]") or "libc.so" in dso or "ld-linux" in dso or sym == "[unknown]":
            continue
        if "::" not in sym:
            if "chorus" in dso:  # C code linked in: SQLite (libsqlite3-sys)
                return "SQLite (C library, incl. its writes and syscalls)"
            continue
        c = crate_of(sym)
        if c in NOT_CRATES or c.startswith("[") or (len(c) == 1 and c.isupper()):
            continue
        return c
    if frames and frames[0][0].startswith("[k]"):
        return "kernel, no Rust caller found"
    return "libc/unknown, no Rust caller found"


def main():
    total = 0
    comps = collections.Counter()
    threads = collections.Counter()
    incl = collections.Counter()
    pats = [(name, re.compile(p)) for name, p in INCLUSIVE]
    for thread, frames in samples(sys.stdin):
        total += 1
        threads[thread] += 1
        comps[component(frames)] += 1
        syms = [s[4:] if s.startswith("[k] ") else s for s, _ in frames]
        kern = any(s.startswith("[k]") for s, _ in frames)
        for name, p in pats:
            if name.startswith("kernel"):
                hit = kern
            else:
                hit = any(p.search(s) for s in syms)
            if hit:
                incl[name] += 1
    if not total:
        print("no samples")
        return
    print(f"{total} samples")
    print("\n== by thread")
    for t, n in threads.most_common(8):
        print(f"{100 * n / total:6.1f}%  {t}")
    print("\n== by component (leaf-most known frame; malloc and syscalls go to their caller)")
    for c, n in comps.most_common(25):
        if 100 * n / total >= 0.5:
            print(f"{100 * n / total:6.1f}%  {c}")
    print("\n== inclusive (share of samples with it on the stack)")
    for name, _ in INCLUSIVE:
        print(f"{100 * incl[name] / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
