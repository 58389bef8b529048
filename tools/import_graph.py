"""The import graph of harness/ at module level: modules, arrows, circles and floors.

    python tools/import_graph.py            # the figures, and every circle's modules
    python tools/import_graph.py --arrows   # also every arrow, importer -> imported

A circle is a set of modules that import each other (a strongly connected component of more than one
module); a floor is a step of the longest chain of imports once each circle counts as one room.
`lint-imports` enforces the layers (pyproject.toml); this prints what it keeps. Run it with PYTHONPATH at
another checkout to measure that one.
"""

from __future__ import annotations

import argparse
import sys

import grimp


def graph(package: str = "harness") -> dict[str, list[str]]:
    """Each module of ``package`` -> the modules of ``package`` it imports (at any place in its code)."""
    g = grimp.build_graph(package, include_external_packages=False)
    return {m: sorted(i for i in g.find_modules_directly_imported_by(m) if i != m) for m in sorted(g.modules)}


def circles(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def floors(edges: dict[str, list[str]], loops: list[list[str]]) -> int:
    """The length of the longest chain of imports, each circle counted as one room."""
    room = {m: m for m in edges}
    for loop in loops:
        for m in loop:
            room[m] = loop[0]
    below: dict[str, set[str]] = {}
    for m, imported in edges.items():
        below.setdefault(room[m], set()).update(room[i] for i in imported if room[i] != room[m])
    height: dict[str, int] = {}

    def of(r: str) -> int:
        if r not in height:
            height[r] = 1 + max((of(b) for b in below.get(r, ())), default=0)
        return height[r]

    sys.setrecursionlimit(max(1000, 4 * len(edges)))
    return max((of(r) for r in below), default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default="harness")
    parser.add_argument("--arrows", action="store_true", help="also print every arrow")
    args = parser.parse_args(argv)
    edges = graph(args.package)
    loops = circles(edges)
    print(f"{args.package}: {len(edges)} modules, {sum(map(len, edges.values()))} arrows, {len(loops)} circles, "
          f"{floors(edges, loops)} floors")
    for loop in loops:
        print(f"circle of {len(loop)}: {', '.join(loop)}")
    if args.arrows:
        for m, imported in edges.items():
            for i in imported:
                print(f"{m} -> {i}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
