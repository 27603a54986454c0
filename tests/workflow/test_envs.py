"""Each rule's conda environment holds everything its script imports.

The script's imports are followed through the project package (`landcover.*`), so a
library module that imports torch makes torch a requirement of every rule that uses it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]  # the repository

# import name -> conda-forge package name, where they differ
CONDA_NAME = {
    "yaml": "pyyaml",
    "torch": "pytorch",
    "segmentation_models_pytorch": "segmentation-models-pytorch",
    "pystac_client": "pystac-client",
    "rio_cogeo": "rio-cogeo",
    "matplotlib": "matplotlib-base",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
}
# provided by a listed package (its own dependency, always installed with it)
PROVIDED_BY = {"affine": "rasterio", "pyarrow": "pandas"}


def rule_blocks() -> dict[str, dict[str, str]]:
    rules = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule |checkpoint )", smk.read_text()):
            name = re.match(r"(?:rule|checkpoint) (\w+):", block)
            script = re.search(r'script:\s*\n\s*"\.\./(scripts/[\w./]+)"', block)
            conda = re.search(r'conda:\s*\n\s*"\.\./(envs/[\w./]+)"', block)
            if name and script:
                assert conda, f"rule {name.group(1)} runs a script but declares no conda env"
                rules[name.group(1)] = {"script": script.group(1), "conda": conda.group(1)}
    return rules


def imports_of(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def third_party_imports(script) -> set[str]:
    """Top-level third-party modules reachable from a script through landcover.*"""
    todo, seen, found = [ROOT / script], set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imports_of(path):
            top = name.split(".")[0]
            if top == "landcover":
                parts = name.split(".")[1:]
                for n in range(len(parts), 0, -1):
                    module = ROOT / "src" / "landcover" / ("/".join(parts[:n]) + ".py")
                    package = ROOT / "src" / "landcover" / "/".join(parts[:n]) / "__init__.py"
                    for candidate in (module, package):
                        if candidate.exists():
                            todo.append(candidate)
                todo.append(ROOT / "src" / "landcover" / "__init__.py")
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


def env_packages(env_file) -> tuple[set[str], list[str]]:
    env = yaml.safe_load((ROOT / env_file).read_text())
    conda, pip = set(), []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
        else:
            conda.add(re.split(r"[=<>!\s]", dep)[0])
    return conda, pip


RULES = rule_blocks()


def test_rules_were_found():
    assert {"align_area", "tile_area", "acquire_imagery", "acquire_labels"} <= set(RULES)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_environment_holds_the_script_imports(rule):
    script, env_file = RULES[rule]["script"], RULES[rule]["conda"]
    conda, pip = env_packages(env_file)
    assert any(p.startswith("-e ..") for p in pip), f"{env_file} does not install the package"
    missing = set()
    for module in third_party_imports(script):
        package = CONDA_NAME.get(module, module)
        if package not in conda and PROVIDED_BY.get(module) not in conda:
            missing.add(f"{module} (conda-forge: {package})")
    assert not missing, f"rule {rule}: {env_file} lacks {sorted(missing)} imported by {script}"


def test_base_dependencies_match_the_geo_environment():
    """`pip install -e ..` in geo.yaml must not pull anything conda did not install."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda, _ = env_packages("envs/geo.yaml")
    for requirement in project["dependencies"]:
        name = re.split(r"[=<>!\[\s]", requirement)[0].lower()
        assert name in conda, f"{name} is a base dependency but not in envs/geo.yaml"
