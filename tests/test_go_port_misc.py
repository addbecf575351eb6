"""Port of asyncmachine-go `pkg/machine/mach_misc_test.go` and
`mach_utils_test.go` (synchronous parts). Section numbers (§) refer to
docs/design/semantics.md.

Go tests NOT ported here, and why:

- TestStepTypeString: Go-only transition step types.
- TestRelationString: Go-only `Relation` enum (relations are `State` fields).
- TestIsActiveTick: Go-only helper `IsActiveTick` (the rule "odd = active" is
  covered by the clock tests).
- TestTimeMethods: Go-only methods on `Time` (`Is1`, `Any1`, `Add`,
  `DiffSince`); a Python `Time` is a plain tuple.
- TestAMerge: Go-only `AMerge` (Python args are plain dicts: `{**a, **b}`).
- TestStateUtils: Go-only `StateAdd`/`StateSet`/`StatesEqual` (Python `State`
  is an attrs class; `attrs.evolve` covers it).
- TestWithOpts's `OptsWithParentTracers` and `Opts` struct: Go-only; its
  debug and tracers parts are ported.
- TestStatesFile's `NewStateGroups` part: Python has no state groups.
"""

from __future__ import annotations

import pytest

import asyncmachine as am

# --------------------------------------------------------------------------
# mach_misc_test.go


def test_with_opts(monkeypatch: pytest.MonkeyPatch) -> None:
    """TestWithOpts (Go's `OptsWithDebug` is env `AM_DEBUG=1`, §11.1;
    `OptsWithTracers` is the `tracers=` keyword)."""
    monkeypatch.setenv("AM_DEBUG", "1")
    tracer = am.Tracer()
    mach = am.Machine({}, tracers=[tracer], handler_timeout=1.0)
    assert mach.panic_to_exception is False
    assert mach.handler_timeout is None
    assert mach.tracers[0] is tracer
    mach.log_args_mapper = am.new_log_args_mapper(10, ["arg"])


def test_result_string() -> None:
    """TestResultString."""
    assert str(am.Result.EXECUTED) == "executed"
    assert str(am.Result.CANCELED) == "canceled"
    assert str(am.Result.QUEUED) == "queued"
    assert (am.Result.EXECUTED, am.Result.CANCELED, am.Result.QUEUED) == (0, 1, 2)


def test_mutation_type_string() -> None:
    """TestMutationTypeString (Go's internal "eval" type is not public)."""
    assert str(am.MutationType.ADD) == "add"
    assert str(am.MutationType.REMOVE) == "remove"
    assert str(am.MutationType.SET) == "set"


def test_log_level_string() -> None:
    """TestLogLevelString."""
    assert str(am.LogLevel.NOTHING) == "nothing"
    assert str(am.LogLevel(0)) == "nothing"
    assert str(am.LogLevel.EXTERNAL) == "external"
    assert str(am.LogLevel.CHANGES) == "changes"
    assert str(am.LogLevel.OPS) == "ops"
    assert str(am.LogLevel.DECISIONS) == "decisions"
    assert str(am.LogLevel.EVERYTHING) == "everything"
    assert [int(level) for level in am.LogLevel] == [0, 1, 2, 3, 4, 5]


def test_new_args_mapper() -> None:
    """TestNewArgsMapper (cutting rule of §11.2)."""
    # short
    mapper = am.new_log_args_mapper(2, ["arg", "arg2"])
    res = mapper({"arg": "foo"})
    assert res["arg"] == "fo"
    res = mapper({"arg": "foo", "arg2": "bar"})
    assert res["arg"] == "fo"
    assert res["arg2"] == "ba"
    # keys not chosen are left out
    assert "other" not in mapper({"arg": "foo", "other": "x"})

    # long
    mapper = am.new_log_args_mapper(5, ["arg", "arg2"])
    res = mapper({"arg": "foofoofoo"})
    assert res["arg"] == "fo..."


def test_parse_struct() -> None:
    """TestParseStruct (schema normalisation, §1.1, seen through
    `Machine.schema`; the user's State objects stay untouched)."""
    a = am.State(remove=["A", "B", "C"], add=["C"], after=["A"])
    s = {"A": a, "B": am.State(), "C": am.State()}
    m = am.Machine(s)
    parsed = m.schema["A"]
    assert tuple(parsed.remove) == ("B",)
    assert tuple(parsed.add) == ("C",)
    assert tuple(parsed.after) == ()
    assert m.schema["B"] == am.State()
    # the user's definition is not modified
    assert tuple(a.remove) == ("A", "B", "C")
    assert tuple(a.after) == ("A",)
    assert s["A"] is a


def test_s_merge() -> None:
    """TestSMerge (`SAdd` is `am.s_add`)."""
    s = ["A", "B", "C"]
    s2 = ["C", "D", "E"]
    assert am.s_add(s, s2) == ["A", "B", "C", "D", "E"]
    assert am.s_add() == []


# TestStatesFile: super states and child states (typed names)


class StatesFileSuperStates(am.StatesBase):
    Foo = am.state()
    Baz = am.state()


class StatesFileStates(StatesFileSuperStates):
    Bar = am.state()


STATES_FILE_SUPER_SCHEMA = {
    StatesFileSuperStates.Foo: am.State(),
    StatesFileSuperStates.Baz: am.State(),
}

STATES_FILE_SCHEMA = am.schema_merge(
    STATES_FILE_SUPER_SCHEMA, {StatesFileStates.Bar: am.State()}
)


def test_states_file() -> None:
    """TestStatesFile (the state-groups half is Go-only)."""
    assert StatesFileStates.Foo == "Foo"
    assert StatesFileStates.Bar == "Bar"
    assert STATES_FILE_SCHEMA["Foo"] is not None
    assert list(STATES_FILE_SCHEMA) == ["Foo", "Baz", "Bar"]
    assert StatesFileStates.names() == ["Foo", "Baz", "Bar", "Exception"]
    m = am.Machine(STATES_FILE_SCHEMA)
    assert m.state_names == StatesFileStates.names()


# --------------------------------------------------------------------------
# mach_utils_test.go


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """TestEnv (`AM_LOG=1` sets the default log level, §11.1)."""
    monkeypatch.setenv("AM_LOG", "1")
    m = am.Machine({"A": am.State()})
    assert m.log_level == am.LogLevel.EXTERNAL
