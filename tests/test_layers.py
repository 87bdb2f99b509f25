"""The package's layers: every import points down the reading order, none forms a cycle; argparse
lives in the CLI alone; private Ray/Optuna names live in tune_ext alone.

    python tests/test_layers.py      # prints the import graph, one module per line, in layer order
"""

import ast
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "raysearch"
# Bottom to top: a module may import only modules listed before it.
LAYERS = [
    "errors",
    "files",
    "vocabulary",
    "metadata",
    "data",
    "synth",
    "download",
    "sources",
    "models",
    "metrics",
    "importance",
    "checkpoint",
    "batches",
    "step",
    "train",
    "inference",
    "deploy",
    "records",
    "predict",
    "trainable",
    "space",
    "tune_ext",
    "arms",
    "rundir",
    "session",
    "progress",
    "plan",
    "render",
    "tuner",
    "table",
    "api",
    "cli",
    "__main__",
    "__init__",
]
PRIVATE = re.compile(
    r"\b(ray\._private|_experiment_analysis|_ot_study|_ot_trials|_completed_trials|_try_log_hparams|_trial_writer|_temp_dir)\b"
)


def imports() -> dict[str, set[str]]:
    """module -> the raysearch modules it imports (anywhere in it, functions included)."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("raysearch"):
                target = node.module.removeprefix("raysearch").lstrip(".")
                found.update(
                    [target]
                    if target
                    else [a.name for a in node.names if (PACKAGE / f"{a.name}.py").exists()]
                )
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("raysearch."))
        graph[path.stem] = found - {path.stem}
    return graph


def test_every_module_has_a_layer():
    assert set(imports()) == set(LAYERS)


def test_imports_point_down_only():
    graph = imports()
    upward = [(m, t) for m, targets in graph.items() for t in targets if LAYERS.index(t) >= LAYERS.index(m)]
    assert upward == []  # which also rules out cycles: the layer order is a topological order


def test_argparse_only_in_the_cli_and_private_names_only_in_tune_ext():
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        if path.stem != "cli":
            assert "argparse" not in text, path.name
        if path.stem != "tune_ext":
            assert not PRIVATE.search(text), (path.name, PRIVATE.search(text))


if __name__ == "__main__":
    graph = imports()
    width = max(map(len, LAYERS))
    for module in LAYERS:
        below = sorted(graph[module], key=LAYERS.index)
        print(f"{module:>{width}} -> {', '.join(below) or '-'}")
    sys.exit(0)
