"""The public surface: the API contract's names, exports, typed state names, helpers."""

from __future__ import annotations

import pytest

import asyncmachine as am

MACHINE_METHODS = [
    "add",
    "add1",
    "remove",
    "remove1",
    "set",
    "toggle",
    "toggle1",
    "add_err",
    "add_err_state",
    "can_add",
    "can_remove",
    "is_",
    "is1",
    "not_",
    "not1",
    "any",
    "any1",
    "switch",
    "has",
    "has1",
    "tick",
    "time",
    "clock",
    "is_time",
    "is_clock",
    "inspect",
    "string_all",
    "is_err",
    "bind_handlers",
    "detach_handlers",
    "bind_tracer",
    "detach_tracer",
    "when",
    "when1",
    "when_not",
    "when_not1",
    "when_args",
    "when_time",
    "when_time1",
    "when_ticks",
    "when_query",
    "when_queue",
    "when_queue_ends",
    "when_err",
    "when_disposed",
    "new_state_ctx",
    "fork",
    "eval",
    "dispose",
    "add_breakpoint",
    "on_dispose",
    "log",
    "is_queued",
    "will_be",
    "will_be1",
    "will_be_removed",
    "will_be_removed1",
]

MACHINE_PROPERTIES = [
    "id",
    "parent_id",
    "tags",
    "schema",
    "state_names",
    "active_states",
    "queue_tick",
    "queue_tick_processed",
    "queue_len",
    "queue",
    "disposed",
    "err",
    "log_level",
]


def test_every_public_name_is_exported() -> None:
    for name in am.__all__:
        assert hasattr(am, name), name
    for name in (
        "State",
        "Schema",
        "S",
        "EXCEPTION",
        "schema_merge",
        "s_add",
        "Machine",
        "Result",
        "MutationType",
        "LogLevel",
        "StateNameError",
        "SchemaError",
        "MachineDisposedError",
        "Event",
        "Transition",
        "ExceptionHandler",
        "Tracer",
        "StatesBase",
        "Time",
        "Clock",
        "ArgsError",
        "args_class",
        "arg",
        "pass_args",
        "parse_args",
        "lint",
        "LintIssue",
    ):
        assert name in am.__all__, name


def test_public_classes_show_the_public_module() -> None:
    for name in (
        "Machine",
        "State",
        "Event",
        "Transition",
        "StateCtx",
        "Tracer",
        "ArgsError",
        "LintIssue",
    ):
        assert getattr(am, name).__module__ == "asyncmachine"


@pytest.mark.parametrize("name", MACHINE_METHODS)
def test_machine_has_method(name: str) -> None:
    assert callable(getattr(am.Machine, name))
    assert getattr(am.Machine, name).__doc__, f"{name} lacks a docstring"


@pytest.mark.parametrize("name", MACHINE_PROPERTIES)
def test_machine_has_property(name: str) -> None:
    mach = am.Machine({"A": am.State()}, parent=am.Machine({"P": am.State()}))
    getattr(mach, name)


def test_enums_have_lowercase_string_names() -> None:
    assert str(am.Result.EXECUTED) == "executed"
    assert str(am.Result.QUEUED) == "queued"
    assert am.Result.CANCELED == 1
    assert str(am.MutationType.REMOVE) == "remove"
    assert str(am.LogLevel.DECISIONS) == "decisions"
    assert am.LogLevel.EVERYTHING == 5


def test_errors_are_value_errors() -> None:
    assert issubclass(am.StateNameError, ValueError)
    assert issubclass(am.SchemaError, ValueError)
    assert issubclass(am.HandlerTimeoutError, TimeoutError)


def test_state_is_frozen_and_takes_iterables() -> None:
    st = am.State(require=iter(["A"]), add=("B",), remove={"C"})
    assert st.require == ("A",)
    assert st.add == ("B",)
    assert st.remove == ("C",)
    with pytest.raises(AttributeError):
        st.auto = True  # type: ignore[misc]
    with pytest.raises(TypeError, match="'AB'"):
        am.State(require="AB")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        am.State(add=[1])  # type: ignore[list-item]


def test_schema_merge_and_s_add() -> None:
    a = {"A": am.State(), "B": am.State()}
    b = {"B": am.State(multi=True), "C": am.State()}
    merged = am.schema_merge(a, b)
    assert list(merged) == ["A", "B", "C"]
    assert merged["B"].multi
    assert a["B"].multi is False
    assert am.s_add(["A", "B"], ["B", "C"], ["A"]) == ["A", "B", "C"]
    with pytest.raises(TypeError):
        am.s_add("AB")


def test_bad_schema_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        am.Machine(["A"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'A'"):
        am.Machine({"A": {}})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        am.Machine({1: am.State()})  # type: ignore[dict-item]


def test_bad_constructor_options_raise_type_error() -> None:
    schema = {"A": am.State()}
    with pytest.raises(TypeError):
        am.Machine(schema, id=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        am.Machine(schema, tags="ab")
    with pytest.raises(TypeError):
        am.Machine(schema, queue_limit=0)
    with pytest.raises(TypeError):
        am.Machine(schema, parent=object())  # type: ignore[arg-type]


def test_equal_schemas_share_compiled_form_but_not_state() -> None:
    schema = {"A": am.State(remove=["B"]), "B": am.State(remove=["A"])}
    m1 = am.Machine(schema)
    m2 = am.Machine(dict(schema))
    m1.add1("A")
    assert m2.not1("A")
    m2.add1("B")
    assert m1.string_all() == "(A:1) [B:0 Exception:0]"
    assert m2.string_all() == "(B:1) [A:0 Exception:0]"


class FileStates(am.StatesBase):
    Downloading = am.state()
    Downloaded = am.state()


class MoreStates(FileStates):
    Uploading = am.state()
    Uploaded = "Uploaded"


def test_typed_state_names() -> None:
    assert FileStates.Downloading == "Downloading"
    assert isinstance(MoreStates.Uploading, str)
    assert FileStates.names() == ["Downloading", "Downloaded", "Exception"]
    assert MoreStates.names() == [
        "Downloading",
        "Downloaded",
        "Uploading",
        "Uploaded",
        "Exception",
    ]
    assert MoreStates.Exception == am.EXCEPTION


def test_typed_state_names_work_as_schema_keys() -> None:
    schema = {
        MoreStates.Downloading: am.State(remove=[MoreStates.Downloaded]),
        MoreStates.Downloaded: am.State(remove=[MoreStates.Downloading]),
        MoreStates.Uploading: am.State(require=[MoreStates.Downloaded]),
        MoreStates.Uploaded: am.State(),
    }
    mach = am.Machine(schema)
    assert mach.state_names == MoreStates.names()
    mach.add1(MoreStates.Downloaded)
    assert mach.add1(MoreStates.Uploading) == am.Result.EXECUTED


def test_typed_state_attribute_must_match_its_name() -> None:
    with pytest.raises(ValueError, match="Foo"):

        class Bad(am.StatesBase):
            Foo = "Bar"


def test_typed_state_class_is_not_instantiated() -> None:
    with pytest.raises(TypeError):
        FileStates()
