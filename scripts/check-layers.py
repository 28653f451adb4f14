#!/usr/bin/env python3
"""The layering rules of docs/ARCHITECTURE.md, checked on the source files (issue 16).

Usage: scripts/check-layers.py crates/*/src      (exit 1 and a list of violations, else exit 0)

1. No import cycle between the source files of a crate. An edge A -> B is any path from A to B:
   `crate::x::y`, `super::x`, or `child::x` inside a module file (a `mod.rs` that declares
   children and re-exports them is an edge to each re-exported child, so a child importing its
   parent's re-exports closes a cycle: share through a leaf file instead).
2. No verb file imports another verb file (crates/per/src/cli/<verb>.rs).
3. The status layer (crates/per-node/src/status/) imports nothing of the node but the clock, the
   config's defaults and itself.
Crossing crates cannot cycle (cargo refuses), and the CLI crate `per` sits on top, so nothing
below it can import it.
"""
import os, re, sys, collections
def modpath_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"): rel = rel[:-1]
    return rel
def files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(".rs"):
                p = os.path.join(d, f); out[tuple(modpath_of(root, p))] = p
    return out
def strip_tests(text):
    i = text.find("#[cfg(test)]")
    return text if i < 0 else text[:i]
USE = re.compile(r"\b(crate|super)((?:::\w+)+)")
def edges(root):
    fm = files(root); E = collections.defaultdict(set)
    for mp, p in fm.items():
        text = strip_tests(open(p).read())
        text = re.sub(r"//.*", "", text)
        # expand use crate::{a, b::c}
        for m in re.finditer(r"\b(crate|super)::\{([^}]*)\}", text):
            base = list(mp if m.group(1)=="super" else ())
            if m.group(1)=="super":
                base = list(mp[:-1]) if not p.endswith("mod.rs") else list(mp[:-1])
            for part in m.group(2).split(","):
                segs = [s for s in part.strip().split("::") if s and s != "self"]
                tgt = resolve(fm, base + segs)
                if tgt and tgt != mp: E[mp].add(tgt)
        # `use child::X` / `pub use child::X` / `self::child` inside a module file: a real edge
        for m in re.finditer(r"(?<![:\w])(?:self::)?(\w+)::", text):
            if m.group(1) in ("crate", "super", "self"): continue
            child = mp + (m.group(1),)
            if child in fm: E[mp].add(child)
        for m in USE.finditer(text):
            segs = m.group(2).strip(":").split("::")
            base = [] if m.group(1)=="crate" else list(mp[:-1])
            tgt = resolve(fm, base + segs)
            if tgt and tgt != mp: E[mp].add(tgt)
    return fm, E
def resolve(fm, segs):
    for n in range(len(segs), -1, -1):
        if tuple(segs[:n]) in fm: return tuple(segs[:n])
    return None
def sccs(nodes, E):
    idx = {}; low = {}; st = []; on = set(); res = []; c = [0]
    sys.setrecursionlimit(10000)
    def go(v):
        idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
        for w in E.get(v, ()):
            if w not in idx: go(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: res.append(comp)
    for v in nodes:
        if v not in idx: go(v)
    return res
VERB_SHARED = {"common", "exit", "signal", "ops_exit"}
STATUS_MAY_IMPORT = {("clock",), ("config",)}
bad = 0
for root in sys.argv[1:]:
    fm, E = edges(root)
    for a, targets in sorted(E.items()):
        for b in sorted(targets):
            if (len(a) >= 2 and a[0] == "cli" and len(b) >= 2 and b[0] == "cli"
                    and a[1] not in VERB_SHARED and b[1] not in VERB_SHARED and a[1] != b[1]):
                bad += 1
                print(f"{root}: verb {'::'.join(a)} imports verb {'::'.join(b)}")
            if (root.rstrip("/").endswith("per-node/src") and a[:1] == ("status",)
                    and b[:1] != ("status",) and b not in STATUS_MAY_IMPORT):
                bad += 1
                print(f"{root}: status layer {'::'.join(a)} imports {'::'.join(b)}")
    # a parent module file (mod.rs) declaring children is not an import; only uses count
    for comp in sccs(list(fm), E):
        bad += 1
        print(f"{root}: cycle of {len(comp)} files:", " ".join("::".join(c) or "<root>" for c in sorted(comp)))
sys.exit(1 if bad else 0)
