"""The package's floor plan, checked on its imports (read with ast, nothing is imported).

Layers, lowest first (docs/ARCHITECTURE.md draws them). A module may import its own
folder and any lower layer, never a higher one; folders on one layer do not import
each other. Function-level imports count; ``if TYPE_CHECKING:`` blocks do not.

0. shared types: classes, frames, topics, inventory, answer (and the generated msg/srv);
   poses and images (pose maths, image decoding: used by ros, evaluation and sim)
1. ttt (the TTT core), perception (frames -> tokens), sim (the simulator)
2. memory (memories only)
3. reasoning (questions over an inventory)
4. pipeline (perception -> memory -> reasoning, built in one place)
5. training, evaluation (offline, ROS-free), vlm
6. bench (ROS-free benchmarks)
7. ros (the node, and what needs a running node: live replay, node benchmark)
8. the command dispatchers: cli.py, bench/cli.py, evaluation/cli.py (they may call any
   layer: ``spatial-ttt eval --live`` and ``spatial-ttt bench node`` run under ros/)

rclpy and the other ROS client libraries are imported under ros/ only.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "spatial_ttt_ros"
LAYERS = {
    "classes": 0, "frames": 0, "topics": 0, "inventory": 0, "answer": 0, "msg": 0, "srv": 0, "__init__": 0,
    "ttt": 1, "perception": 1, "sim": 1, "poses": 0, "images": 0,
    "memory": 2,
    "reasoning": 3,
    "pipeline": 4,
    "training": 5, "evaluation": 5, "vlm": 5,
    "bench": 6,
    "ros": 7,
    "cli": 8,
}
COMMANDS = ("spatial_ttt_ros.cli", "spatial_ttt_ros.bench.cli", "spatial_ttt_ros.evaluation.cli")
COMMAND_LAYER = 8
ROS_CLIENTS = ("rclpy", "rclcpp", "tf2_ros", "launch", "launch_ros", "rosbag2_py", "message_filters")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(imported module, line) for every import outside ``if TYPE_CHECKING:``."""
    out = []

    def visit(node):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, node.lineno))
            for a in node.names:  # "from pkg import module" imports pkg.module
                out.append((f"{target}.{a.name}", node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _graph() -> tuple[dict[str, list[tuple[str, int]]], dict[str, Path]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "weights" not in p.parts}
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = _imports(tree, name, path.name == "__init__.py")
    return graph, files


def _internal(graph, files):
    """module -> {internal module it imports: first line}."""
    edges = {}
    for name, imports in graph.items():
        mine = {}
        for target, line in imports:
            if target in files and target != name:
                mine.setdefault(target, line)
        edges[name] = mine
    return edges


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    return COMMAND_LAYER if module in COMMANDS else LAYERS[_folder(module)]


def test_every_folder_has_a_layer():
    _, files = _graph()
    missing = sorted({_folder(m) for m in files} - set(LAYERS))
    assert not missing, f"give these folders/modules a layer in test_architecture.LAYERS: {missing}"


def test_no_import_cycle():
    graph, files = _graph()
    edges = _internal(graph, files)
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = [0]

    def strongconnect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_import_from_a_higher_layer():
    graph, files = _graph()
    bad = []
    for name, targets in _internal(graph, files).items():
        src = _folder(name)
        for target, line in targets.items():
            dst = _folder(target)
            if src == dst or target == "spatial_ttt_ros":
                continue
            if _layer(target) >= _layer(name):
                bad.append(f"{name}:{line} imports {target} (layer {_layer(target)} >= {_layer(name)})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_ros_client_libraries_only_under_ros():
    graph, files = _graph()
    bad = []
    for name, imports in graph.items():
        if _folder(name) == "ros":
            continue
        for target, line in imports:
            if target.split(".")[0] in ROS_CLIENTS:
                bad.append(f"{files[name].relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not bad, "ROS client libraries imported outside ros/:\n" + "\n".join(sorted(set(bad)))
