"""The package layout's rules: no import circle between subpackages, self-contained remote code, short modules."""

import ast
import sys
from pathlib import Path

import corit_hf


PACKAGE = Path(corit_hf.__file__).parent
REMOTE_CODE = ("configuration_corit.py", "modeling_corit.py")
LIBRARIES = {"torch", "transformers", "huggingface_hub"}
REMOTE_CODE_IMPORTS = LIBRARIES | set(sys.stdlib_module_names)
"""Remote code may import torch, transformers, huggingface_hub and the standard library, nothing else."""
MAX_LINES = 400


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the corit_hf modules `path` imports (relative imports resolved), and top-level others."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            found.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def folder_of(module: str) -> str | None:
    """The subpackage of a corit_hf module name (`corit_hf.video.faces` -> `video`); None for top-level modules."""
    parts = module.split(".")
    if parts[0] != "corit_hf" or len(parts) < 2 or not (PACKAGE / parts[1]).is_dir():
        return None
    return parts[1]


def folder_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = folder_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if source is None:
            continue
        targets = {folder_of(module) for module in imported_modules(path)} - {None, source}
        graph.setdefault(source, set()).update(targets)
    return graph


def test_no_subpackage_imports_one_that_imports_it_back():
    graph = folder_graph()
    state: dict[str, str] = {}

    def visit(folder: str, trail: list[str]) -> None:
        state[folder] = "open"
        for target in sorted(graph.get(folder, ())):
            assert state.get(target) != "open", f"import circle: {' -> '.join(trail + [folder, target])}"
            if target not in state:
                visit(target, trail + [folder])
        state[folder] = "done"

    for folder in sorted(graph):
        if folder not in state:
            visit(folder, [])
    assert "data" not in graph["video"], "video/ must not import data/"


def test_no_two_modules_import_each_other():
    """Not even under TYPE_CHECKING, as study/data.py and study/run.py once did: one of the two must come first."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = imported_modules(path)
    pairs = {tuple(sorted((a, b))) for a, imports in modules.items() for b in imports if a in modules.get(b, ())}
    assert not pairs, f"modules that import each other: {sorted(pairs)}"


def test_remote_code_files_import_only_torch_transformers_and_each_other():
    for name in REMOTE_CODE:
        for module in imported_modules(PACKAGE / "models" / name):
            top = module.split(".")[0]
            sibling = module.removeprefix("corit_hf.models.") + ".py"
            assert top in REMOTE_CODE_IMPORTS or sibling in REMOTE_CODE, f"{name} imports {module}"


def test_modules_stay_short():
    """Every module but the remote code, which follows transformers' one-file-per-model rule: a model file that must
    load alone (backbone probing, mechanisms, losses) cannot be split into siblings."""
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if p.name not in REMOTE_CODE and (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_top_level_exports_stay_importable():
    for name in corit_hf.__all__:
        assert getattr(corit_hf, name) is not None
