"""Package structure: no import cycles, every module importable on its own, registries that
drive the config choices, CLI choices and README tables."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pfdtrain"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """pfdtrain modules ``name`` imports anywhere in its body (also inside functions: a
    deferred import is still a dependency, and deferring one is how cycles used to hide)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import sub" depends on the submodule when sub is one, else on pkg.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # "import pfdtrain.x.y" where y is a name
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
                # Importing a.b.c first runs the packages a.b (and a): an edge to each one
                # the importer is not itself inside (those are already initialising).
                parent = target.rpartition(".")[0]
                while parent and parent != "pfdtrain":
                    if parent != name and not name.startswith(parent + "."):
                        out.add(parent)
                    parent = parent.rpartition(".")[0]
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "active"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "active":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    assert graph["pfdtrain.data.windows"] >= {"pfdtrain.data.splits", "pfdtrain.data.storage"}
    assert _cycles(graph) == []


def test_public_data_names_stay_importable():
    import pfdtrain.data as data

    for name in data.__all__:
        assert getattr(data, name) is not None, name
    from pfdtrain.data import LAYOUTS, build_dataloaders, read_signal  # noqa: F401


def test_every_module_imports_in_a_fresh_interpreter():
    names = [n for n in _modules() if n != "pfdtrain.__main__"]
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    proc = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_data_import_command_code_lives_with_the_cli():
    for path in (PACKAGE / "data").rglob("*.py"):
        text = path.read_text()
        assert "argparse" not in text, path
        assert "add_subparsers" not in text and "add_parser(" not in text, path


def test_readme_layout_table_and_cli_choices_come_from_the_registry():
    from pfdtrain.cli import build_parser
    from pfdtrain.data.importers import LAYOUTS, MANIFEST_LAYOUT, layouts_markdown

    assert layouts_markdown() in (ROOT / "README.md").read_text()
    for name, layout in LAYOUTS.items():
        assert layout.name == name and f"`{name}`" in layouts_markdown()
    parser = build_parser()
    args = parser.parse_args(["data", "import", "--layout", next(iter(LAYOUTS)), "--root", "x",
                              "--out", "y.h5"])
    assert args.layout == next(iter(LAYOUTS))
    imp = parser._subparsers._group_actions[0].choices["data"]._subparsers._group_actions[0]
    layout_action = next(a for a in imp.choices["import"]._actions if a.dest == "layout")
    assert list(layout_action.choices) == [MANIFEST_LAYOUT, *LAYOUTS]


def test_config_choices_come_from_the_name_registries():
    import dataclasses

    from pfdtrain.config.training_config import LossConfig, ModelConfig, TrainingConfig
    from pfdtrain.models import MODEL_REGISTRY
    from pfdtrain.training.cnn_losses import LOSS_NAMES
    from pfdtrain.training.registry import TRAINERS, trainer_class

    def choices(cls, name):
        return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["choices"]

    assert choices(ModelConfig, "name") == list(MODEL_REGISTRY)
    assert choices(LossConfig, "name") == list(LOSS_NAMES)
    assert choices(TrainingConfig, "trainer") == list(TRAINERS)
    for name in TRAINERS:  # every registered trainer resolves to a class
        assert isinstance(trainer_class(name), type)


def test_readme_losses_and_trainers_table_lists_every_registered_name():
    """The hand-written 'Losses and trainers' table must not fall behind the registries
    (the configuration reference, generated from them, is checked in test_readme)."""
    from pfdtrain.training.cnn_losses import LOSS_NAMES
    from pfdtrain.training.registry import TRAINERS, trainer_class

    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Losses and trainers"):text.index("## Distributed training")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    for name in LOSS_NAMES:
        assert any(line.startswith(f"| `loss.name: {name}`") for line in rows), name
    for name in TRAINERS:
        if name != "cnn":  # the default plain trainer has no row of its own
            row = next(line for line in rows if line.startswith(f"| `trainer: {name}`"))
            assert f"`{trainer_class(name).__name__}`" in row, name
    listed = {line.split("`")[1].split(": ")[1] for line in rows
              if line.startswith("| `loss.name: ") or line.startswith("| `trainer: ")}
    assert listed <= set(LOSS_NAMES) | set(TRAINERS), listed  # nothing that no longer exists


def test_trainers_are_built_through_the_registry_hooks_only():
    """A new trainer is one module plus one TRAINERS entry: the pipeline and evaluation ask
    the registered class (needs_metadata, check_config, from_config), never its name."""
    from pfdtrain.training.cnn_trainer import CNNTrainer
    from pfdtrain.training.registry import TRAINERS, trainer_class

    for name in TRAINERS:
        cls = trainer_class(name)
        assert issubclass(cls, CNNTrainer) and isinstance(cls.needs_metadata, bool), name
    assert trainer_class("pinn").needs_metadata and not trainer_class("cnn").needs_metadata
    for module in ("pipeline.py", "evaluation/evaluate.py", "evaluation/predict.py", "cli.py"):
        source = (ROOT / "pfdtrain" / module).read_text()
        for name in TRAINERS:
            assert f'trainer == "{name}"' not in source, (module, name)


def test_input_transforms_are_one_module_and_one_registry_entry_each():
    """data.transform's choices, the README table and the transform modules must not drift
    from TRANSFORMS: a transform is its own module under pfdtrain/data/transforms/ plus its
    registry entry, nothing else."""
    import dataclasses
    import importlib

    from pfdtrain.config.training_config import DataConfig
    from pfdtrain.data.transforms import TRANSFORMS, InputTransform, transforms_markdown

    field = next(f for f in dataclasses.fields(DataConfig) if f.name == "transform")
    assert field.metadata["choices"] == list(TRANSFORMS)
    assert field.default == next(iter(TRANSFORMS)) == "raw"
    assert transforms_markdown() in (ROOT / "README.md").read_text()
    folder = PACKAGE / "data" / "transforms"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "base"}
    defining = {}
    for stem in modules:
        module = importlib.import_module(f"pfdtrain.data.transforms.{stem}")
        classes = [v for v in vars(module).values() if isinstance(v, type)
                   and issubclass(v, InputTransform) and v is not InputTransform
                   and v.__module__ == module.__name__]
        assert len(classes) == 1, (stem, classes)  # one transform per module
        defining[classes[0].name] = classes[0]
    assert defining == TRANSFORMS  # every module registered, every entry has its module
    for name, cls in TRANSFORMS.items():
        assert cls.name == name and cls.what and cls.__doc__ and "Example" in cls.__doc__
        assert f"| `{name}` |" in transforms_markdown()


def test_readme_benchmark_tables_come_from_the_registries():
    from pfdtrain.benchmark.runner import suites_markdown

    assert suites_markdown() in (ROOT / "README.md").read_text()
