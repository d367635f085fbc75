"""The installed distribution holds every package, deploy/ as zoo.deploy and the recipes as data."""
from __future__ import annotations

import sys
import zipfile
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the main environment is 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    conf = _pyproject()["tool"]["setuptools"]
    listed = set(conf["packages"])
    mapping = conf["package-dir"]
    found = set()
    for top, pkg in (("zoo", "zoo"), ("deploy", "zoo.deploy")):
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
    assert mapping["zoo.deploy"] == "deploy" and mapping["zoo.recipes"] == "recipes"


@pytest.mark.slow
def test_wheel_ships_deploy_recipes_and_assets(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(tmp_path.glob("zoo-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "zoo/deploy/__init__.py" in names
    recipes = {n for n in names if n.startswith("zoo/recipes/") and n.endswith(".yaml")}
    assert {p.name for p in (REPO / "recipes").glob("*.yaml")} == {Path(n).name for n in recipes}
    assets = {p.name for p in (REPO / "zoo" / "assets").iterdir() if p.is_file()}
    assert assets <= {Path(n).name for n in names if n.startswith("zoo/assets/")}
