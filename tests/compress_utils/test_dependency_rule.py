"""The one dependency rule: zoo -> benchmarks -> methods -> core; methods never import each other; remote-code files
import only torch, transformers (and huggingface_hub and safetensors, which transformers needs) and their own folder."""

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
METHODS = ("alpine_hf", "flab_hf", "xtc_hf")
# the standard library is everywhere transformers is;
# safetensors and huggingface_hub: hard dependencies of transformers, so present wherever it is
REMOTE_CODE_ALLOWED = {"torch", "transformers", "huggingface_hub", "safetensors", *sys.stdlib_module_names}


def imported_roots(path: Path) -> set[str]:
    """Top-level packages ``path`` imports absolutely (relative imports stay inside its folder)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def package_imports(package: str) -> dict[str, set[str]]:
    return {str(p.relative_to(REPO)): imported_roots(p) for p in sorted((REPO / package).rglob("*.py"))}


def test_core_imports_no_method_and_no_zoo():
    for path, roots in package_imports("compress_utils").items():
        if "/metrics/" in path:
            continue
        assert not roots & {*METHODS, "benchmarks", "model_cards"}, path


@pytest.mark.parametrize("method", METHODS)
def test_methods_import_the_core_never_each_other_nor_the_benchmarks_or_zoo(method):
    others = {*METHODS, "benchmarks", "model_cards"} - {method}
    for path, roots in package_imports(method).items():
        assert not roots & others, f"{path} imports {sorted(roots & others)}"


def test_benchmarks_import_methods_and_core_never_the_zoo():
    imports = package_imports("benchmarks")
    assert len(imports) >= 8
    for path, roots in imports.items():
        assert "model_cards" not in roots, path


@pytest.mark.parametrize("method", METHODS)
def test_remote_code_files_import_only_torch_transformers_and_their_folder(method):
    files = [p for p in (REPO / method).glob("*.py") if p.name.startswith(("configuration_", "modeling_"))]
    files += [p for p in (REPO / method).glob("*_xtc.py") if p.name.startswith(("quantizer_", "constants_"))]
    assert len(files) >= 2
    for path in files:
        extra = imported_roots(path) - REMOTE_CODE_ALLOWED
        assert not extra, f"{path.name} imports {sorted(extra)}; remote code travels alone with the checkpoint"


def relative_graph(package: str) -> dict[str, set[str]]:
    """Module -> sibling modules it imports relatively (at module level or inside functions), ``__init__`` aside."""
    graph = {}
    for path in sorted((REPO / package).glob("*.py")):
        if path.stem == "__init__":
            continue
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    targets.add(node.module.split(".")[0])
                else:
                    targets.update(alias.name for alias in node.names)
        graph[path.stem] = targets - {"__init__", path.stem}
    return graph


@pytest.mark.parametrize("package", ["compress_utils", *METHODS, "model_cards"])
def test_no_import_circles_inside_a_package(package):
    graph = relative_graph(package)

    def reaches(start, goal, seen=()):
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, (*seen, nxt))) for nxt in graph.get(start, ())
        )

    circles = sorted(module for module in graph if reaches(module, module))
    assert not circles, f"{package}: modules in an import circle: {circles}"
