#!/usr/bin/env python3
"""Fail if any crate's modules import each other in a circle.

For every crate under crates/ and examples/, two levels are checked: the crate's top-level
modules (`crate::a` used in module `b`), and the children of each module directory
(`super::x` or `crate::dir::x` used in a sibling). A circle means neither module can be read,
changed or tested without the other, so `make lint` refuses it. Comments and doc links do not
count; `#[cfg(test)]` code does, as it is part of the module.

    scripts/check-module-cycles.py            # every crate
    scripts/check-module-cycles.py crates/x   # one crate
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USE = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")


def code_lines(path):
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        yield line.split("//")[0]


def module_of(src, path):
    """The module path of a file: src/a/b.rs -> [a, b]; src/a/mod.rs -> [a]; lib.rs -> []."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts and parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return parts


def references(src, path):
    """Absolute module paths a file refers to."""
    here = module_of(src, path)
    is_dir_root = path.name in ("mod.rs", "lib.rs", "main.rs")
    for line in code_lines(path):
        for kind, rest in USE.findall(line):
            segs = rest.strip(":").split("::")
            if kind == "crate":
                yield segs
            else:
                # `super` is the parent of the file's module (for mod.rs, of the directory's).
                parent = here[:-1] if here else []
                if is_dir_root and here:
                    parent = here[:-1]
                while segs and segs[0] == "super":
                    segs = segs[1:]
                    parent = parent[:-1]
                yield parent + segs


def cycles(graph):
    """Every elementary circle found by a depth-first search (each reported once)."""
    found, seen = [], set()

    def visit(node, stack):
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                circle = stack[stack.index(nxt):]
                key = frozenset(circle)
                if key not in seen:
                    seen.add(key)
                    found.append(circle + [nxt])
            elif len(stack) < 12:
                visit(nxt, stack + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def check_crate(crate):
    src = crate / "src"
    files = [p for p in src.rglob("*.rs")]
    graphs = {}  # parent module path (tuple) -> {child: set(child)}
    for path in files:
        here = module_of(src, path)
        if not here:
            continue
        for target in references(src, path):
            # The deepest common parent decides the level at which the edge counts.
            common = 0
            while common < min(len(here), len(target)) and here[common] == target[common]:
                common += 1
            if common >= len(here) or common >= len(target):
                continue  # a module using its own parent or child
            parent = tuple(here[:common])
            a, b = here[common], target[common]
            if a != b and (src / Path(*parent, b)).with_suffix(".rs").exists() or (
                src / Path(*parent, b)
            ).is_dir():
                graphs.setdefault(parent, {}).setdefault(a, set()).add(b)
    problems = []
    for parent, graph in sorted(graphs.items()):
        for circle in cycles(graph):
            where = "crate" if not parent else "crate::" + "::".join(parent)
            name = crate.relative_to(ROOT) if crate.is_relative_to(ROOT) else crate
            problems.append(f"{name}: {where}: " + " -> ".join(circle))
    return problems


def main():
    crates = [Path(a).resolve() for a in sys.argv[1:]] or sorted(
        p.parent for p in ROOT.glob("crates/*/Cargo.toml")
    ) + sorted(p.parent for p in ROOT.glob("examples/*/Cargo.toml"))
    problems = [p for c in crates for p in check_crate(c)]
    for p in problems:
        print(f"import circle: {p}")
    if problems:
        sys.exit(1)
    print(f"no import circles in {len(crates)} crates")


if __name__ == "__main__":
    main()
