"""The package's layers: subpackages by concern (data < training < searching < reporting; deploy on
training), every import pointing down the reading order, none forming a cycle; argparse in the
CLI package alone; private Ray/Optuna names in searching/ray_compat.py alone.

    python tests/test_layers.py      # prints the import graph, one module per line, in layer order
"""

import ast
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "raysearch"
# What each subpackage may import besides itself (and the top-level errors and files).
PACKAGES = {
    "data": set(),
    "training": {"data"},
    "searching": {"data", "training"},
    "reporting": {"data", "training", "searching"},
    "deploy": {"data", "training"},
}
# Bottom to top: a module may import only modules listed before it.
LAYERS = [
    "errors",
    "log",
    "files",
    "data.__init__",
    "data.schema",
    "data.metadata",
    "data.database",
    "data.cache",
    "data.ptbxl",
    "data.synthetic",
    "data.download",
    "data.dataset",
    "training.__init__",
    "training.config",
    "training.models",
    "training.device",
    "training.metrics",
    "training.operating",
    "training.checkpoint",
    "training.batches",
    "training.evaluation",
    "training.embeddings",
    "training.optimizer",
    "training.step",
    "training.stage",
    "training.standalone",
    "searching.__init__",
    "searching.tracking",
    "searching.ray_compat",
    "searching.searchers",
    "searching.options",
    "searching.space",
    "searching.rundir",
    "searching.trainable",
    "searching.cluster",
    "searching.combined",
    "searching.experiment",
    "searching.finalists",
    "searching.progress",
    "searching.budget",
    "searching.resume",
    "searching.summary",
    "searching.teachers",
    "searching.run",
    "reporting.__init__",
    "reporting.statistics",
    "reporting.clinical",
    "reporting.importance",
    "reporting.freeze",
    "reporting.figures",
    "reporting.table",
    "reporting.reading",
    "reporting.markdown",
    "reporting.csvfile",
    "reporting.plots",
    "reporting.options",
    "reporting.seeds",
    "reporting.run",
    "deploy.__init__",
    "deploy.options",
    "deploy.model",
    "deploy.export",
    "deploy.exported",
    "deploy.load",
    "deploy.records",
    "deploy.predict",
    "api",
    "cli.options",
    "cli.search",
    "cli.stage",
    "cli.model",
    "cli.__init__",
    "__main__",
    "__init__",
]
PRIVATE = re.compile(
    r"\b(ray\._private|_experiment_analysis|_ot_study|_ot_trials|_completed_trials|_try_log_hparams"
    r"|_trial_writer|_trial_result|_temp_dir|_trial_runs|_pyarrow_fs_copy_files)\b"
)


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports() -> dict[str, set[str]]:
    """module -> the raysearch modules it imports (anywhere in it, functions included)."""
    known = modules()
    graph = {}
    for name, path in known.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("raysearch"):
                target = node.module.removeprefix("raysearch").lstrip(".")
                for alias in node.names:  # `from raysearch.training import step` names a module
                    if f"{target}.{alias.name}".lstrip(".") in known:
                        found.add(f"{target}.{alias.name}".lstrip("."))
                found.add(target if target in known else f"{target}.__init__")
            elif isinstance(node, ast.Import):
                found.update(
                    a.name.removeprefix("raysearch.") for a in node.names if a.name.startswith("raysearch.")
                )
        graph[name] = {m for m in found if m in known} - {name}
    return graph


def test_every_module_has_a_layer():
    assert set(modules()) == set(LAYERS)


def test_imports_point_down_only():
    graph = imports()
    upward = [(m, t) for m, targets in graph.items() for t in targets if LAYERS.index(t) >= LAYERS.index(m)]
    assert upward == []  # which also rules out cycles: the layer order is a topological order


def test_subpackages_import_only_the_ones_below():
    crossing = []
    for module, targets in imports().items():
        package = module.split(".")[0]
        if package not in PACKAGES:
            continue
        for target in targets:
            other = target.split(".")[0]
            if other in PACKAGES and other != package and other not in PACKAGES[package]:
                crossing.append((module, target))
    assert crossing == []


def test_argparse_only_in_the_cli_and_private_names_only_in_ray_compat():
    for name, path in modules().items():
        text = path.read_text()
        if name.split(".")[0] != "cli":
            assert "argparse" not in text, name
        if name != "searching.ray_compat":
            assert not PRIVATE.search(text), (name, PRIVATE.search(text))


if __name__ == "__main__":
    graph = imports()
    width = max(map(len, LAYERS))
    for module in LAYERS:
        below = sorted(graph[module], key=LAYERS.index)
        print(f"{module:>{width}} -> {', '.join(below) or '-'}")
    sys.exit(0)
