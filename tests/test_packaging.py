"""Packaging metadata: extras vs dependency groups, the sdist, the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _group(groups: dict[str, list[Any]], name: str) -> list[str]:
    """The requirements of a PEP 735 group, includes resolved."""
    out: list[str] = []
    for item in groups[name]:
        if isinstance(item, dict):
            out += _group(groups, item["include-group"])
        else:
            out.append(item)
    return out


def test_dev_extra_is_the_dev_group() -> None:
    data = _pyproject()
    extra = data["project"]["optional-dependencies"]["dev"]
    group = _group(data["dependency-groups"], "dev")
    assert sorted(extra) == sorted(group)
    assert len(set(extra)) == len(extra)
    assert any(r.startswith("build") for r in extra)


def test_sdist_carries_what_the_wheel_needs() -> None:
    hatch = _pyproject()["tool"]["hatch"]["build"]["targets"]
    sdist = hatch["sdist"]["include"]
    for src in hatch["wheel"]["force-include"]:
        assert src in sdist, f"{src} is in the wheel but not in the sdist"
    for package in hatch["wheel"]["packages"]:
        assert package in sdist
    for doc in ("README.md", "CHANGELOG.md", "LICENSE"):
        assert doc in sdist and (ROOT / doc).is_file()


def test_project_urls_are_absolute() -> None:
    urls = _pyproject()["project"]["urls"]
    assert urls
    for name, url in urls.items():
        assert url.startswith("https://"), name


def test_console_scripts_point_at_functions() -> None:
    scripts = _pyproject()["project"]["scripts"]
    assert set(scripts) == {"am-gen", "am-repl", "am-vis", "am-history", "am-dbg"}
    for target in scripts.values():
        assert re.fullmatch(r"[\w.]+:\w+", target)


def test_readme_opens_with_the_install_line_and_has_no_relative_links() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block is not None
    assert first_block.group(1).strip() == "pip install asyncmachine"
    assert text.index("pip install asyncmachine") < text.index("## ")
    targets = re.findall(r"\]\(([^)]+)\)", text)
    targets += re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, re.M)
    assert targets
    relative = [t for t in targets if not t.startswith("https://")]
    assert not relative, f"relative links break on an index page: {relative}"


def test_every_example_is_listed_and_takes_a_backend() -> None:
    scripts = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
    assert len(scripts) >= 8
    for doc in ("examples/README.md", "docs/examples.md"):
        text = (ROOT / doc).read_text(encoding="utf-8")
        listed = re.findall(r"^\| `(\w+\.py)` \|", text, re.M)
        assert sorted(listed) == scripts, doc
    for name in scripts:
        source = (ROOT / "examples" / name).read_text(encoding="utf-8")
        assert '"--backend"' in source and "--backend" in source.split('"""')[1], name
