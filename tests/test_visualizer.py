"""asyncmachine.visualizer: Mermaid and DOT diagrams, and the am-vis command."""

from __future__ import annotations

from pathlib import Path

import pytest

import asyncmachine as am
from asyncmachine import visualizer as vis

SCHEMA: am.Schema = {
    "A": am.State(require=["B"], after=["B"]),
    "B": am.State(auto=True, add=["C"]),
    "C": am.State(multi=True, remove=["A"]),
}


def test_mermaid_of_a_schema() -> None:
    assert vis.mermaid(SCHEMA) == (
        "stateDiagram-v2\n"
        "    direction LR\n"
        "    A\n"
        "    B\n"
        "    B: auto\n"
        "    C\n"
        "    C: multi\n"
        "    A --> B: require\n"
        "    A --> B: after\n"
        "    B --> C: add\n"
        "    C --> A: remove\n"
    )


def test_mermaid_highlights_a_machines_active_states() -> None:
    mach = am.Machine(SCHEMA, id="m1")
    mach.add1("B")
    assert mach.active_states == ["B", "C"]
    text = vis.mermaid(mach, direction="TB")
    assert "    direction TB\n" in text
    active = [ln for ln in text.splitlines() if ln.startswith("    class ")]
    assert active == ["    class B,C active"]
    assert "classDef active fill:" in text
    # Exception is left out while it has no relation and is inactive
    assert "Exception" not in text
    mach.add_err(ValueError("boom"))
    text = vis.mermaid(mach)
    assert "    Exception\n" in text
    assert "    class Exception error\n" in text


def test_explicit_active_and_relations_filter() -> None:
    text = vis.mermaid(SCHEMA, active=["C"], relations=["remove"])
    assert "    C --> A: remove\n" in text
    assert "require" not in text and "add" not in text
    assert "    class C active\n" in text


def test_states_filter_drops_edges_to_hidden_states() -> None:
    d = vis.diagram(SCHEMA, states=["A", "C"])
    assert d.states == ["A", "C"]
    assert d.edges == [("C", "A", "remove")]


def test_exception_is_drawn_when_a_relation_names_it() -> None:
    schema = {"Err": am.State(require=["Exception"]), "Ok": am.State()}
    d = vis.diagram(schema)
    assert d.states == ["Err", "Ok", "Exception"]
    assert ("Err", "Exception", "require") in d.edges


def test_odd_names_get_aliases() -> None:
    schema = {"end": am.State(), 'Say "hi"': am.State(require=["end"])}
    text = vis.mermaid(schema)
    assert '    state "end" as s_end\n' in text
    assert '    state "Say #quot;hi#quot;" as s_Say__hi_\n' in text
    assert "    s_Say__hi_ --> s_end: require\n" in text


def test_dot() -> None:
    schema = {"A": am.State(require=['B"x']), 'B"x': am.State(auto=True)}
    text = vis.dot(schema, active=["A"])
    assert text.startswith('digraph "schema" {\n    rankdir=LR;\n')
    assert '    "B\\"x" [label="B\\"x\\nauto"];\n' in text
    assert '"A" -> "B\\"x" [label="require", color="#1f4e79"];' in text
    assert 'fillcolor="#b9e4b9"' in text
    assert text.endswith("}\n")
    styles = vis.dot({"X": am.State(remove=["Y"], after=["Y"]), "Y": am.State()})
    assert '[label="remove", color="#c62828", style=dashed]' in styles
    assert '[label="after", color="#757575", style=dotted]' in styles


def test_bad_input_names_the_culprit() -> None:
    with pytest.raises(ValueError, match="'Nope'"):
        vis.mermaid(SCHEMA, states=["A", "Nope"])
    with pytest.raises(ValueError, match="'Nope'"):
        vis.dot(SCHEMA, active=["Nope"])
    with pytest.raises(ValueError, match="'implies'"):
        vis.mermaid(SCHEMA, relations=["implies"])  # type: ignore[list-item]
    with pytest.raises(am.SchemaError, match="Missing"):
        vis.mermaid({"A": am.State(require=["Missing"])})


# ---------------------------------------------------------------------------
# am-vis

MODULE = """
import asyncmachine as am

DEMO_SCHEMA = {
    "Start": am.State(),
    "Ready": am.State(require=["Start"]),
}
OTHER = {"X": am.State()}
NOT_A_SCHEMA = 3
mach = am.Machine(DEMO_SCHEMA, id="demo")
mach.add1("Start")
"""


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "demo_states.py"
    path.write_text(MODULE)
    return path


def test_cli_writes_mermaid_to_stdout(
    module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vis.main([str(module)]) == 0  # the only *_SCHEMA
    out = capsys.readouterr().out
    assert out == vis.mermaid(
        {"Start": am.State(), "Ready": am.State(require=["Start"])}
    )
    assert vis.main([f"{module}:OTHER", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("```mermaid\nstateDiagram-v2\n") and out.endswith("```\n")


def test_cli_machine_target_and_options(
    module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vis.main([f"{module}:mach", "-f", "dot"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('digraph "demo" {')
    assert '"Start" [label="Start", style="rounded,filled"' in out
    args = [f"{module}:DEMO_SCHEMA", "--active", "Ready", "--relations", "require"]
    assert vis.main([*args, "--states", "Start,Ready", "--direction", "TB"]) == 0
    out = capsys.readouterr().out
    assert "    class Ready active\n" in out and "direction TB" in out


def test_cli_output_file_picks_the_format(module: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo.dot"
    assert vis.main([f"{module}:DEMO_SCHEMA", "-o", str(out)]) == 0
    assert out.read_text().startswith("digraph")
    mmd = tmp_path / "demo.mmd"
    assert vis.main([f"{module}:DEMO_SCHEMA", "-o", str(mmd)]) == 0
    assert mmd.read_text().startswith("stateDiagram-v2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{m}:NOT_A_SCHEMA"], "NOT_A_SCHEMA is not a schema"),
        (["{m}:MISSING"], "MISSING is not a schema"),
        (["{m}", "--states", "Nope"], "unknown state 'Nope'"),
        (["{m}", "--relations", "implies"], "unknown relation 'implies'"),
        (["no_such_module_xyz"], "cannot import no_such_module_xyz"),
        (["/nonexistent/x.py:S"], "no such file"),
    ],
)
def test_cli_errors_are_one_line(
    module: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = [a.replace("{m}", str(module)) for a in args]
    assert vis.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("am-vis: error: ") and message in err
    assert err.count("\n") == 1


def test_cli_module_with_no_single_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.py"
    path.write_text(
        "import asyncmachine as am\n"
        "A_SCHEMA = {'A': am.State()}\nB_SCHEMA = {'B': am.State()}\n"
    )
    assert vis.main([str(path)]) == 2
    assert "several schemas (A_SCHEMA, B_SCHEMA)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        vis.main([str(path), "-f", "dot", "--markdown"])


def test_docs_diagrams_of_the_examples_are_up_to_date(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "diagrams.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- am-vis (\S+) -->\n(```mermaid\n.*?```\n)", text, re.S)
    assert len(blocks) >= 6
    for target, block in blocks:
        path, _, attr = target.partition(":")
        assert vis.main([str(root / path) + ":" + attr, "--markdown"]) == 0
        fresh = capsys.readouterr().out
        assert block == fresh, (
            f"docs/diagrams.md is stale for {target}: "
            f"paste the output of `am-vis {target} --markdown`"
        )
