"""Typed args: declaring, checking, passing, parsing, logging, the wire form."""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, Literal, NewType, Protocol, TypeVar

import attrs
import pytest

import asyncmachine as am
from asyncmachine import helpers
from asyncmachine.helpers import (
    ArgsError,
    args_converter,
    args_from_wire,
    args_log_fields,
    args_to_wire,
)

UserId = NewType("UserId", int)
T = TypeVar("T", bound=str)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Greeter(Protocol):
    def greet(self) -> str: ...


@am.args_class(key="test.download")
class DownloadArgs:
    url: str = am.arg(log="url")
    retries: int = am.arg(default=3, log="retries")
    tags: tuple[str, ...] = am.arg(factory=tuple, log="tags")
    headers: dict[str, str] = am.arg(factory=dict)
    note: str | None = am.arg(default=None, log="note")
    verbose: bool = am.arg(default=False, log="verbose")


@am.args_class(key="test.inner")
class Inner:
    n: int


@am.args_class(key="test.rich")
class RichArgs:
    inner: Inner
    points: list[tuple[int, int]] = am.arg(factory=list)
    names: frozenset[str] = frozenset()
    scores: dict[str, float] = am.arg(factory=dict)
    mode: Literal["fast", "slow"] = "fast"
    color: Color = Color.RED
    when: dt.datetime | None = None
    user: UserId = UserId(0)
    label: Annotated[str, "a label"] = ""
    anything: Any = None
    obj: object = None
    seq: Sequence[int] = ()


@am.args_class(key="test.odd")
class OddArgs:
    kind: type[Exception] = ValueError
    fn: Callable[[], None] | None = None
    greeter: Greeter | None = None
    it: Iterator[int] | None = None
    bound: T | None = None  # type: ignore[valid-type]
    cplx: complex = 0
    ratio: float = 0.5
    plain: list = am.arg(factory=list)  # type: ignore[type-arg]


@am.args_class(key="test.counter", frozen=False)
class Counter:
    n: int = 0
    items: list[int] = am.arg(factory=list)


@am.args_class
class DefaultKey:
    flag: bool = False


SCHEMA = {"Foo": am.State(), "Bar": am.State(remove=["Foo"])}


# ------------------------------------------------------------------ declaring


def test_declared_class_is_a_frozen_attrs_class() -> None:
    a = DownloadArgs(url="https://x")
    assert attrs.has(DownloadArgs)
    assert a == DownloadArgs("https://x")
    assert a.retries == 3
    assert a.tags == ()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.url = "y"  # type: ignore[misc]


def test_keys() -> None:
    assert helpers.pass_args(DownloadArgs(url="u")).keys() == {"test.download"}
    assert list(am.pass_args(DefaultKey())) == [f"{__name__}.DefaultKey"]


@am.args_class(key="test.child")
class ChildArgs(Inner):
    label: str = am.arg(default="", log="label")


def test_args_classes_inherit() -> None:
    child = ChildArgs(n=1, label="x")
    assert [type(f.validator).__name__ for f in attrs.fields(ChildArgs)] == [
        "_TypeCheck",
        "_TypeCheck",
    ]
    with pytest.raises(ArgsError, match=r"ChildArgs.n must be int"):
        ChildArgs(n="1")
    args = am.pass_args(child)
    assert am.parse_args(ChildArgs, args) == child
    assert am.parse_args(Inner, args) is None  # another key
    assert args_log_fields(args) == {"label": "x"}
    assert args_from_wire(args_to_wire(args)) == args

    @am.args_class(key="test.checked")
    class Checked:
        n: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    with pytest.raises(ValueError, match="'n' must be >= 0"):
        Checked(n=-1)
    with pytest.raises(ArgsError, match=r"Checked.n must be int"):
        Checked(n="1")


def test_a_key_belongs_to_one_class() -> None:
    with pytest.raises(ValueError, match=r"test.download"):

        @am.args_class(key="test.download")
        class Other:
            x: int = 0


def test_redeclaring_the_same_class_replaces_it() -> None:
    def declare() -> type:
        @am.args_class(key="test.redeclared")
        class Again:
            x: int = 0

        return Again

    first, second = declare(), declare()
    assert first is not second
    assert am.parse_args(second, am.pass_args(second())) == second()


def test_bad_declarations() -> None:
    with pytest.raises(TypeError, match="key"):
        am.args_class(key="")
    with pytest.raises(TypeError, match="log tag"):
        am.arg(log="")


def test_unresolvable_annotation_is_a_clear_type_error() -> None:
    @am.args_class(key="test.unresolvable")
    class Broken:
        x: Missing = None  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match=r"Broken.*Missing"):
        Broken()


# ------------------------------------------------------------------- checking


@pytest.mark.parametrize(
    ("make", "where"),
    [
        (lambda: DownloadArgs(url=5), "DownloadArgs.url must be str, got int 5"),
        (lambda: DownloadArgs(url="u", retries="3"), "DownloadArgs.retries"),
        (lambda: DownloadArgs(url="u", tags=("a", 1)), r"DownloadArgs.tags\[1\]"),
        (lambda: DownloadArgs(url="u", tags=["a"]), "DownloadArgs.tags must be"),
        (lambda: DownloadArgs(url="u", headers={1: "a"}), r"headers\[1\]"),
        (lambda: DownloadArgs(url="u", headers={"a": 1}), r"headers\['a'\]"),
        (lambda: DownloadArgs(url="u", note=5), "DownloadArgs.note must be"),
        (lambda: RichArgs(inner=1), "RichArgs.inner must be Inner"),
        (lambda: RichArgs(inner=Inner(1), points=[(1, "2")]), r"points\[0\]\[1\]"),
        (lambda: RichArgs(inner=Inner(1), points=[(1, 2, 3)]), "a tuple of 2"),
        (lambda: RichArgs(inner=Inner(1), names=frozenset({1})), r"names\[0\]"),
        (lambda: RichArgs(inner=Inner(1), mode="medium"), "RichArgs.mode"),
        (lambda: RichArgs(inner=Inner(1), mode=1), "RichArgs.mode"),
        (lambda: RichArgs(inner=Inner(1), color="red"), "RichArgs.color"),
        (lambda: RichArgs(inner=Inner(1), user="7"), "RichArgs.user must be int"),
        (lambda: RichArgs(inner=Inner(1), label=2), "RichArgs.label must be str"),
        (lambda: RichArgs(inner=Inner(1), seq=[1, "2"]), r"seq\[1\]"),
        (lambda: OddArgs(kind=int), "OddArgs.kind"),
        (lambda: OddArgs(kind=ValueError()), "OddArgs.kind"),
        (lambda: OddArgs(fn=5), "OddArgs.fn"),
        (lambda: OddArgs(bound=5), "OddArgs.bound"),
        (lambda: OddArgs(cplx="1"), "OddArgs.cplx must be complex"),
        (lambda: OddArgs(ratio="1"), "OddArgs.ratio must be float"),
        (lambda: Inner(n=None), "Inner.n must be int, got NoneType None"),
    ],
)
def test_wrong_types_raise_args_error_naming_the_field(
    make: Callable[[], object], where: str
) -> None:
    with pytest.raises(ArgsError, match=where) as info:
        make()
    assert isinstance(info.value, TypeError)
    assert info.value.field is not None


def test_right_types_pass() -> None:
    RichArgs(
        inner=Inner(1),
        points=[(1, 2)],
        names=frozenset({"a"}),
        scores={"a": 1, "b": 2.5},
        mode="slow",
        color=Color.BLUE,
        when=dt.datetime(2024, 1, 1),
        user=UserId(3),
        label="x",
        anything=object(),
        obj=[1],
        seq=[1, 2],
    )
    it = iter([1, 2])
    OddArgs(
        kind=KeyError,
        fn=lambda: None,
        greeter=object(),  # a protocol that is not runtime-checkable: trusted
        it=it,
        bound="s",
        cplx=1.5,
        ratio=1,
        plain=[1, "a"],
    )
    assert next(it) == 1, "an iterator is not consumed by the check"


def test_long_values_are_cut_in_the_message() -> None:
    with pytest.raises(ArgsError, match=r"got int 10{36}\.\.\.$"):
        DownloadArgs(url=10**50)


def test_mutable_args_are_checked_on_set_and_on_pass() -> None:
    c = Counter()
    c.n = 2
    with pytest.raises(ArgsError, match=r"Counter.n"):
        c.n = "3"
    c.items.append("x")  # type: ignore[arg-type]
    with pytest.raises(ArgsError, match=r"Counter.items\[0\]"):
        am.pass_args(c)


def test_bad_args_leave_the_machine_unchanged() -> None:
    mach = am.Machine(SCHEMA)
    mach.add1("Foo")
    before = mach.clock()
    with pytest.raises(ArgsError, match="retries"):
        mach.add1("Bar", am.pass_args(DownloadArgs(url="u", retries="x")))
    c = Counter()
    c.items.append("x")  # type: ignore[arg-type]
    with pytest.raises(ArgsError, match="items"):
        mach.add1("Bar", am.pass_args(c))
    assert mach.clock() == before
    assert mach.active_states == ["Foo"]
    assert mach.queue_len == 0


# ------------------------------------------------------- passing and parsing


def test_pass_and_parse_in_a_handler() -> None:
    seen: list[DownloadArgs | None] = []

    class Handlers:
        def BarEnter(self, e: am.Event) -> bool:
            a = am.parse_args(DownloadArgs, e.args)
            return a is not None and a.retries > 0

        def BarState(self, e: am.Event) -> None:
            seen.append(am.parse_args(DownloadArgs, e.args))
            assert am.parse_args(Counter, e.args) is None
            assert e.args["plain"] == 1

    mach = am.Machine(SCHEMA)
    mach.bind_handlers(Handlers())
    assert mach.add1("Bar") == am.Result.CANCELED
    args = am.pass_args(DownloadArgs(url="u", retries=0), plain=1)
    assert mach.add1("Bar", args) == am.Result.CANCELED
    args = am.pass_args(DownloadArgs(url="u"), plain=1)
    assert mach.add1("Bar", args) == am.Result.EXECUTED
    assert seen == [DownloadArgs(url="u")]


def test_parse_args_edge_cases() -> None:
    assert am.parse_args(DownloadArgs, None) is None
    assert am.parse_args(DownloadArgs, {}) is None
    assert am.parse_args(DownloadArgs, {"test.download": None}) is None
    with pytest.raises(ArgsError, match=r"'test.download'.*dict.*DownloadArgs"):
        am.parse_args(DownloadArgs, {"test.download": {"url": "u"}})
    with pytest.raises(TypeError, match="not an args class"):
        am.parse_args(dict, {"a": 1})


def test_pass_args_edge_cases() -> None:
    assert am.pass_args() == {}
    assert am.pass_args(a=1) == {"a": 1}
    with pytest.raises(ArgsError, match="args class instances, got dict"):
        am.pass_args({"url": "u"})
    with pytest.raises(ArgsError, match="two args objects"):
        am.pass_args(Inner(1), Inner(2))
    with pytest.raises(ArgsError, match="clashes"):
        am.pass_args(Inner(1), **{"test.inner": 2})


async def test_when_args_matches_typed_args() -> None:
    mach = am.Machine(SCHEMA)
    async with mach:
        ev = mach.when_args("Foo", am.pass_args(Inner(2)))
        mach.add1("Foo", am.pass_args(Inner(1)))
        assert not ev.is_set()
        mach.remove1("Foo")
        mach.add1("Foo", am.pass_args(Inner(2)))
        assert ev.is_set()


# -------------------------------------------------------------------- logging


def test_log_fields() -> None:
    args = am.pass_args(
        DownloadArgs(url="https://x", tags=("a", "b"), verbose=True), id="plain"
    )
    assert args_log_fields(args) == {
        "url": "https://x",
        "retries": "3",
        "tags": "('a', 'b')",
        "verbose": "True",
    }
    empty = am.pass_args(DownloadArgs(url="", retries=0))
    assert args_log_fields(empty) == {"retries": "0"}
    assert args_log_fields({"id": 1, "x": Inner(1)}) == {}


class Loud:
    """A value that counts how often it is turned into text."""

    calls = 0

    def __str__(self) -> str:
        Loud.calls += 1
        return "loud"


@am.args_class(key="test.loud")
class LoudArgs:
    value: object = am.arg(log="value")


def test_log_line_shows_tagged_fields() -> None:
    lines: list[str] = []
    mach = am.Machine(
        SCHEMA,
        id="logged",
        log_level=am.LogLevel.CHANGES,
        logger=lambda level, text: lines.append(text),
    )
    long_url = "https://example.com/" + "x" * 40
    mach.add1("Foo", am.pass_args(DownloadArgs(url=long_url), id="i1"))
    assert lines[-1] == (
        "[logge] [state] +Foo (id=i1 retries=3 url=https://example.c...)"
    )
    # a tag shows even when its name is no log key; a plain arg shows when
    # its name is a log key, and then wins over a tag of the same name
    mach.add1("Bar", am.pass_args(LoudArgs(value="tagged"), value="plain"))
    assert lines[-1].endswith("(value=tagged)")
    mach.log_args_mapper = am.new_log_args_mapper(50, ["value"])
    mach.remove1("Bar", am.pass_args(LoudArgs(value="tagged"), value="plain"))
    assert lines[-1] == "[logge] [state] -Bar (value=plain)"


def test_log_fields_cost_nothing_when_logging_is_off() -> None:
    lines: list[str] = []
    mach = am.Machine(SCHEMA, logger=lambda level, text: lines.append(text))
    Loud.calls = 0
    mach.add1("Foo", am.pass_args(LoudArgs(value=Loud())))
    assert Loud.calls == 0
    assert lines == []
    mach.log_level = am.LogLevel.CHANGES
    mach.add1("Bar", am.pass_args(LoudArgs(value=Loud())))
    assert Loud.calls == 1
    assert lines[-1].endswith("(value=loud)")


# ----------------------------------------------------------------------- wire


def test_wire_round_trip_through_json() -> None:
    args = am.pass_args(
        DownloadArgs(url="u", tags=("a",), headers={"h": "v"}),
        RichArgs(
            inner=Inner(2),
            points=[(1, 2)],
            names=frozenset({"n"}),
            scores={"a": 1.5},
            mode="slow",
            color=Color.BLUE,
            when=dt.datetime(2024, 5, 6, 7, 8, 9),
            user=UserId(4),
            obj={"k": [1]},
            seq=[1, 2],
        ),
        plain=[1, ("x", {"y"})],
        state=am.state(),
        none=None,
    )
    wire = args_to_wire(args)
    assert wire["test.download"] == {
        "__am_args__": "test.download",
        "fields": {
            "url": "u",
            "retries": 3,
            "tags": ["a"],
            "headers": {"h": "v"},
            "note": None,
            "verbose": False,
        },
    }
    assert wire["plain"] == [1, ["x", ["y"]]]
    back = args_from_wire(json.loads(json.dumps(wire)))
    assert back["test.download"] == args["test.download"]
    assert back["test.rich"] == args["test.rich"]
    assert back["plain"] == [1, ["x", ["y"]]]
    assert back["none"] is None


def test_wire_plain_values() -> None:
    class Num(enum.IntEnum):
        ONE = 1

    class Text(str):
        pass

    class Real(float):
        pass

    class Raw(bytes):
        pass

    wire = args_to_wire(
        {
            "e": Color.RED,
            "n": Num.ONE,
            "t": Text("t"),
            "f": Real(1.5),
            "b": Raw(b"x"),
            "flag": True,
        }
    )
    assert wire == {"e": "red", "n": 1, "t": "t", "f": 1.5, "b": b"x", "flag": True}
    assert [type(v) for v in wire.values()] == [str, int, str, float, bytes, bool]


def test_values_that_cannot_cross() -> None:
    with pytest.raises(ArgsError, match=r"args\['obj'\] holds object"):
        args_to_wire({"obj": object()})
    with pytest.raises(ArgsError, match=r"args\['d'\] has the key 1"):
        args_to_wire({"d": {1: "a"}})
    with pytest.raises(
        ArgsError, match=r"args\['l'\]\[1\] holds builtin_function_or_method"
    ):
        args_to_wire({"l": [1, print]})
    with pytest.raises(ArgsError, match=r"OddArgs.kind holds type") as info:
        args_to_wire(am.pass_args(OddArgs()))
    assert info.value.field == "OddArgs.kind"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, r"required field missing @ Inner.n"),
        ({"n": "1"}, r"expected int, got str @ Inner.n"),
        ({"n": True}, r"expected int, got bool @ Inner.n"),
    ],
)
def test_malformed_wire_data_names_the_field(
    fields: dict[str, Any], problem: str
) -> None:
    data = {"x": {"__am_args__": "test.inner", "fields": fields}}
    with pytest.raises(ArgsError, match=r"cannot rebuild Inner from args\['x'\]: "):
        args_from_wire(data)
    with pytest.raises(ArgsError, match=problem):
        args_from_wire(data)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"inner": {"n": 1}, "names": "ab"},
            r"expected a list, got str @ RichArgs.names",
        ),
        ({"inner": {"n": 1}, "names": ["a", 1]}, r"@ RichArgs.names\[1\]"),
        ({"inner": {"n": 1}, "points": [[1]]}, r"expected 2 items.*points\[0\]"),
        ({"inner": {"n": 1}, "scores": {"a": "x"}}, r"RichArgs.scores"),
        ({"inner": {"n": 1}, "when": 5}, r"RichArgs.when"),
        ({"inner": {}}, r"required field missing @ RichArgs.inner.n"),
        ({"inner": {"n": 1}, "mode": "medium"}, r"RichArgs.mode"),
    ],
)
def test_malformed_nested_wire_data(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ArgsError, match=problem):
        args_from_wire({"x": {"__am_args__": "test.rich", "fields": fields}})


def test_malformed_wire_envelopes() -> None:
    with pytest.raises(ArgsError, match="unknown args class 'nope'"):
        args_from_wire({"x": {"__am_args__": "nope", "fields": {}}})
    with pytest.raises(ArgsError, match="unknown args class 5"):
        args_from_wire({"x": {"__am_args__": 5}})
    with pytest.raises(ArgsError, match="no fields mapping"):
        args_from_wire({"x": {"__am_args__": "test.inner", "fields": [1]}})


def test_user_validators_run_on_the_far_side() -> None:
    @am.args_class(key="test.positive")
    class Positive:
        n: int = attrs.field(validator=attrs.validators.gt(0))

    with pytest.raises(ArgsError, match="'n' must be > 0"):
        args_from_wire({"p": {"__am_args__": "test.positive", "fields": {"n": 0}}})


def test_type_checks_run_on_the_far_side() -> None:
    # cattrs accepts True for Literal[1] (True == 1); the field check does not
    @am.args_class(key="test.literal")
    class One:
        n: Literal[1] = 1

    with pytest.raises(ArgsError, match=r"One.n must be Literal"):
        args_from_wire({"o": {"__am_args__": "test.literal", "fields": {"n": True}}})


def test_converter_is_shared_and_extensible() -> None:
    conv = args_converter()
    assert conv is args_converter()
    assert conv.structure(1, float) == 1.0
    assert conv.structure([1, 2], tuple[int, ...]) == (1, 2)


def test_special_forms_of_the_type_check() -> None:
    from typing import Final, List, LiteralString  # noqa: UP035

    from asyncmachine._args import _mismatch

    assert _mismatch(1, Annotated[int, "meta"], "x") is None
    assert _mismatch("1", Annotated[int, "meta"], "x") == ("x", "int", "1")
    assert _mismatch(1, Final[int], "x") is None  # not a field type: trusted
    assert _mismatch(1, LiteralString, "x") is None  # unknown special form
    assert _mismatch([1, "a"], List, "x") is None  # noqa: UP006
    assert _mismatch((), tuple[()], "x") is None
    assert _mismatch((1,), tuple[()], "x") == ("x", "a tuple of 0 items", (1,))


def test_fields_without_a_structure_hook_cannot_be_rebuilt() -> None:
    class Big(int):
        pass

    assert args_to_wire({"n": Big(5)}) == {"n": 5}
    with pytest.raises(ArgsError, match=r"OddArgs.*StructureHandlerNotFoundError"):
        args_from_wire({"x": {"__am_args__": "test.odd", "fields": {}}})
