"""The direction of imports between the project and its apps: webapp is the shared layer the
apps build on, tracking knows nothing of its clients (DESIGN.md: "Nothing in tracking imports
playground"), evaluation builds on both, and no two apps import each other both ways."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("webapp", "tracking", "playground", "evaluation", "access")
# Who may import whom (besides itself). URL confs include apps by dotted string, not import.
MAY_IMPORT = {
    "webapp": set(),
    # Grants are per experiment: the access pages and the `access` command list experiments.
    # The rules themselves (access/rules.py, models.py) stay free of tracking: see below.
    "access": {"webapp", "tracking"},
    "tracking": {"webapp", "access"},
    "playground": {"webapp", "access", "tracking"},
    # Evaluations call playground agents; the playground links to evaluations by URL name only.
    "evaluation": {"webapp", "access", "tracking", "playground"},
}


def imported_apps(package: str) -> dict[str, set[str]]:
    """{app: {module path that imports it}} for the modules of `package` (migrations aside)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in APPS and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", APPS)
def test_each_package_imports_only_the_layers_below_it(package):
    wrong = {app: sorted(paths) for app, paths in imported_apps(package).items()
             if app not in MAY_IMPORT[package]}  # fmt: skip

    assert wrong == {}


def test_the_access_rules_that_tracking_imports_do_not_import_tracking():
    """tracking's views import access.rules: were the rules to import tracking, loading either
    would depend on the order the apps load in."""
    for module in ("rules.py", "models.py"):
        tree = ast.parse((ROOT / "access" / module).read_text())
        modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in modules if m.split(".")[0] == "tracking"], module
