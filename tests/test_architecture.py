"""Imports run one way: phases -> shared layers (models, dataloader, utils, runs);
dataset/ (offline preparation) -> dataloader/, never back; no phase imports another phase.

Read from the source with `ast`, so imports inside functions count as well."""
import ast
from pathlib import Path
from typing import List, Set


ROOT = Path(__file__).resolve().parent.parent
PHASES = ("trainer", "tester", "generate", "continuous", "demo")
SHARED_PACKAGES = ("models", "dataloader", "utils", "dataset")
SHARED_MODULES = ("runs.py",)


def imported_modules(source: str, module: str) -> Set[str]:
    """Absolute names of the modules `source` imports; `module` is its own dotted name
    (e.g. 'dataloader.shapes'), used to resolve relative imports."""
    package = module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            up = node.level - 1
            if up > len(package):
                raise ValueError(f"{module}: relative import beyond the top level")
            base = package[:len(package) - up] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            names.add(prefix)
            # `from pkg import sub` may import the module pkg.sub
            names.update(f"{prefix}.{a.name}" if prefix else a.name for a in node.names)
    return names


def module_name(path: Path) -> str:
    """'dataloader.shapes' for dataloader/shapes.py ('dataloader.__init__' for a package, so that
    its relative imports resolve inside it)."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports_of(path: Path) -> Set[str]:
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path))


def top_levels(names: Set[str]) -> Set[str]:
    return {n.split(".")[0] for n in names if n}


def python_files(package: str) -> List[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def phase_files() -> List[Path]:
    return [ROOT / f"{p}.py" for p in PHASES if (ROOT / f"{p}.py").exists()]


def test_the_import_reader_sees_every_form():
    src = ("import os\nimport dataset.prepare\nfrom dataset import shapes\nfrom .. import dataset\n"
           "from .sampling import make_plan\n"
           "def f():\n    import tester\n")
    names = imported_modules(src, "dataloader.sub.mod")
    assert {"os", "dataset.prepare", "dataset", "tester", "dataloader.sub.sampling"} <= names
    assert "dataset" in top_levels(imported_modules("from .. import dataset\n", "dataloader.mod"))
    assert "dataset" not in top_levels(imported_modules("from . import dataset_tools\n", "dataloader.mod"))


def test_the_checked_files_exist():
    assert len(python_files("dataloader")) >= 5
    names = {p.stem for p in phase_files()}
    assert {"trainer", "tester"} <= names and names & {"generator", "generate"}


def test_dataloader_does_not_import_dataset():
    bad = {str(p.relative_to(ROOT)): sorted(n for n in imports_of(p) if n.split(".")[0] == "dataset")
           for p in python_files("dataloader")}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"dataloader/ is what a run reads and must not import dataset/ (preparation): {bad}"


def test_shared_layers_import_no_phase():
    files = [p for pkg in SHARED_PACKAGES for p in python_files(pkg)]
    files += [ROOT / m for m in SHARED_MODULES if (ROOT / m).exists()]
    upward = set(PHASES) | {"main"}
    bad = {str(p.relative_to(ROOT)): sorted(top_levels(imports_of(p)) & upward) for p in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"shared layers must not import a phase or main: {bad}"


def test_no_phase_imports_another_phase():
    bad = {}
    for p in phase_files():
        others = (top_levels(imports_of(p)) & set(PHASES)) - {p.stem}
        if others:
            bad[p.name] = sorted(others)
    assert not bad, f"a phase imports only shared layers (and demo only main): {bad}"
