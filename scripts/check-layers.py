#!/usr/bin/env python3
"""Find import cycles between source files of each crate (use crate::/super:: paths)."""
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
bad = 0
for root in sys.argv[1:]:
    fm, E = edges(root)
    # a parent module file (mod.rs) declaring children is not an import; only uses count
    for comp in sccs(list(fm), E):
        bad += 1
        print(f"{root}: cycle of {len(comp)} files:", " ".join("::".join(c) or "<root>" for c in sorted(comp)))
sys.exit(1 if bad else 0)
