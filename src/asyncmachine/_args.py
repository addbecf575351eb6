"""Typed mutation args: attrs classes passed into and parsed out of `args`.

An args class is declared once with `@args_class`; its fields are checked
against their annotations when an instance is made, fields may carry a log
tag (`arg(log="url")`), and a cattrs converter carries instances across a
wire (RPC) as plain data.
"""

from __future__ import annotations

import collections.abc as cabc
import datetime as dt
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Literal,
    TypeVar,
    dataclass_transform,
    overload,
)

import attrs

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "ArgsError",
    "arg",
    "args_class",
    "args_converter",
    "args_from_wire",
    "args_log_fields",
    "args_to_wire",
    "parse_args",
    "pass_args",
]

_T = TypeVar("_T")
_V = TypeVar("_V")

_LOG_TAG: Final = "asyncmachine.log"
"""The attrs metadata key of a field's log tag."""

WIRE_TAG: Final = "__am_args__"
"""The key that marks a typed args object in wire data."""


class ArgsError(TypeError):
    """Args that do not fit: the message names the args class and the field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        """The field (or args key) at fault, when there is one."""


# ----------------------------------------------------------------- declaring


@overload
def arg(
    *, default: _V, log: str | None = None, kw_only: bool = False, repr: bool = True
) -> _V: ...


@overload
def arg(
    *,
    factory: Callable[[], _V],
    log: str | None = None,
    kw_only: bool = False,
    repr: bool = True,
) -> _V: ...


@overload
def arg(*, log: str | None = None, kw_only: bool = False, repr: bool = True) -> Any: ...


def arg(
    *,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    log: str | None = None,
    kw_only: bool = False,
    repr: bool = True,
) -> Any:
    """Declare a field of an args class, optionally with a log tag.

    `log="url"` shows the field as `url=...` in the machine's log lines and
    in `args_log_fields`. Without `default` or `factory` the field is
    required.
    """
    if log is not None and (not isinstance(log, str) or not log):
        raise TypeError(f"a log tag is a non-empty string, got {log!r}")
    metadata = {_LOG_TAG: log} if log else {}
    return attrs.field(
        default=default, factory=factory, metadata=metadata, kw_only=kw_only, repr=repr
    )


_REGISTRY: dict[str, type] = {}


@overload
def args_class(cls: type[_T], /) -> type[_T]: ...


@overload
def args_class(
    *, key: str | None = None, frozen: bool = True
) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(arg, attrs.field))
def args_class(
    cls: type[_T] | None = None, /, *, key: str | None = None, frozen: bool = True
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Make `cls` a typed args class: an attrs class with checked fields.

    Instances are passed under `key` (default: the class' module and
    qualified name) by `pass_args` and found there by `parse_args`. Every
    field is checked against its annotation when an instance is made (and
    when a field of a `frozen=False` class is set); a mismatch raises
    `ArgsError` naming the field. Classes are frozen unless told otherwise.
    """
    if key is not None and (not isinstance(key, str) or not key):
        raise TypeError(f"an args key is a non-empty string, got {key!r}")

    def wrap(c: type[_T]) -> type[_T]:
        k = key if key is not None else f"{c.__module__}.{c.__qualname__}"
        old = _REGISTRY.get(k)
        if old is not None and (old.__module__, old.__qualname__) != (
            c.__module__,
            c.__qualname__,
        ):
            raise ValueError(
                f"args key {k!r} already belongs to {old.__module__}.{old.__qualname__}"
            )
        built: type[_T] = attrs.define(
            c, frozen=frozen, field_transformer=_with_type_checks
        )
        fields = attrs.fields(built)  # type: ignore[arg-type]
        built.__am_args_key__ = k  # type: ignore[attr-defined]
        built.__am_log_fields__ = tuple(  # type: ignore[attr-defined]
            (f.name, f.metadata[_LOG_TAG]) for f in fields if _LOG_TAG in f.metadata
        )
        _REGISTRY[k] = built
        return built

    return wrap if cls is None else wrap(cls)


def _key_of(cls: type) -> str:
    key: str | None = getattr(cls, "__am_args_key__", None)
    if key is None or not isinstance(cls, type):
        raise TypeError(f"{cls!r} is not an args class: decorate it with @args_class")
    return key


# ------------------------------------------------------------ type checking


def _with_type_checks(
    cls: type, fields: list[attrs.Attribute[Any]]
) -> list[attrs.Attribute[Any]]:
    out = []
    for f in fields:
        if _has_type_check(f.validator):  # inherited from an args class
            out.append(f)
            continue
        check = _TypeCheck(f.name)  # first, so user validators get the right type
        v = check if f.validator is None else attrs.validators.and_(check, f.validator)
        out.append(f.evolve(validator=v))
    return out


def _has_type_check(validator: Any) -> bool:
    if isinstance(validator, _TypeCheck):
        return True
    return any(_has_type_check(v) for v in getattr(validator, "_validators", ()))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        try:
            hints = typing.get_type_hints(cls)
        except NameError as exc:
            raise TypeError(
                f"cannot resolve the annotations of args class {cls.__name__}: {exc}"
            ) from None
        _HINTS[cls] = hints
    return hints


class _TypeCheck:
    """An attrs validator checking a field against its resolved annotation."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        cls = type(inst)
        tp = _hints(cls).get(self.name, Any)
        bad = _mismatch(value, tp, self.name)
        if bad is not None:
            path, expected, got = bad
            raise ArgsError(
                f"{cls.__name__}.{path} must be {expected}, got "
                f"{type(got).__name__} {_short(got)}",
                field=self.name,
            )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "").replace("collections.abc.", "")


_Mismatch = tuple[str, str, Any]
"""(path of the bad value, the expected type, the bad value)."""

_UNIONS = (typing.Union, types.UnionType)


def _mismatch(value: Any, tp: Any, path: str) -> _Mismatch | None:
    """Where `value` does not fit the annotation `tp`, or None."""
    if tp is Any or tp is object:
        return None
    if tp is None or tp is types.NoneType:
        return None if value is None else (path, "None", value)
    origin = typing.get_origin(tp)
    if origin is None:
        if isinstance(tp, TypeVar):
            bound = tp.__bound__
            return None if bound is None else _mismatch(value, bound, path)
        if isinstance(tp, typing.NewType):
            return _mismatch(value, tp.__supertype__, path)
        if not isinstance(tp, type):
            return None  # a special form this check does not know: trust it
        if tp is float:
            ok = isinstance(value, int | float)
        elif tp is complex:
            ok = isinstance(value, int | float | complex)
        else:
            try:
                ok = isinstance(value, tp)
            except TypeError:  # a protocol that is not runtime-checkable
                return None
        return None if ok else (path, _type_name(tp), value)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _mismatch(value, args[0], path)
    if origin in _UNIONS:
        if any(_mismatch(value, t, path) is None for t in args):
            return None
        return (path, _type_name(tp), value)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return None
        return (path, _type_name(tp), value)
    if origin is type:
        inner = args[0] if args else Any
        ok = isinstance(value, type) and (
            not isinstance(inner, type) or issubclass(value, inner)
        )
        return None if ok else (path, _type_name(tp), value)
    if origin is cabc.Callable:
        return None if callable(value) else (path, _type_name(tp), value)
    if not isinstance(origin, type):
        return None
    if not isinstance(value, origin):
        return (path, _type_name(tp), value)
    return _items_mismatch(value, origin, args, path)


def _items_mismatch(
    value: Any, origin: type, args: tuple[Any, ...], path: str
) -> _Mismatch | None:
    if origin is tuple:  # tuple[()] has no args and takes only ()
        if len(args) == 2 and args[1] is Ellipsis:
            items = [(f"{path}[{i}]", v, args[0]) for i, v in enumerate(value)]
        else:
            if len(value) != len(args):
                return (path, f"a tuple of {len(args)} items", value)
            items = [
                (f"{path}[{i}]", v, t)
                for i, (v, t) in enumerate(zip(value, args, strict=True))
            ]
    elif not args:  # typing.List and friends, unparametrised
        return None
    elif issubclass(origin, cabc.Mapping):
        for k, v in value.items():
            bad = _mismatch(k, args[0], f"{path}[{k!r}]") or _mismatch(
                v, args[1] if len(args) > 1 else Any, f"{path}[{k!r}]"
            )
            if bad is not None:
                return bad
        return None
    elif issubclass(origin, cabc.Sequence | cabc.Set):
        items = [(f"{path}[{i}]", v, args[0]) for i, v in enumerate(value)]
    else:
        return None  # iterators and other generics: checking would consume them
    for where, v, t in items:
        bad = _mismatch(v, t, where)
        if bad is not None:
            return bad
    return None


# ---------------------------------------------------------- passing, parsing


def pass_args(*typed: object, **plain: Any) -> dict[str, Any]:
    """Make a mutation's args dict from typed args objects and plain values.

    Each typed object goes under its class' key; `plain` keyword values are
    added as they are. Objects are checked again (a mutable field may have
    changed since), so bad args raise `ArgsError` before any mutation runs.
    """
    out: dict[str, Any] = {}
    for obj in typed:
        key = getattr(type(obj), "__am_args_key__", None)
        if key is None:
            raise ArgsError(
                f"pass_args takes args class instances, got {type(obj).__name__}; "
                "pass plain values as keywords"
            )
        if key in out:
            raise ArgsError(f"two args objects for the key {key!r}", field=key)
        attrs.validate(obj)  # type: ignore[arg-type]
        out[key] = obj
    for name, value in plain.items():
        if name in out:
            raise ArgsError(
                f"the plain arg {name!r} clashes with typed args", field=name
            )
        out[name] = value
    return out


def parse_args(cls: type[_T], args: Mapping[str, Any] | None) -> _T | None:
    """The `cls` object in a mutation's args, or None when there is none.

    A value of another type under `cls`' key raises `ArgsError`.
    """
    key = _key_of(cls)
    if not args:
        return None
    value = args.get(key)
    if value is None or isinstance(value, cls):
        return value
    raise ArgsError(
        f"args[{key!r}] holds {type(value).__name__}, expected {cls.__name__}",
        field=key,
    )


def args_log_fields(args: Mapping[str, Any]) -> dict[str, str]:
    """The log-tagged fields of the typed args in `args`: tag -> str(value).

    Empty values (None, '', False, empty collections) are left out, and so
    are plain (untyped) args.
    """
    out: dict[str, str] = {}
    for obj in args.values():
        tags = getattr(type(obj), "__am_log_fields__", None)
        if not tags:
            continue
        for name, tag in tags:
            value = getattr(obj, name)
            if value is None or value is False or value == "":
                continue
            if isinstance(value, list | tuple | set | frozenset | dict) and not value:
                continue
            out[tag] = str(value)
    return out


# ------------------------------------------------------------------- wire


def _structure_strict(tp: type) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if type(value) is tp or (tp is not int and isinstance(value, tp)):
            return value
        raise TypeError(f"expected {tp.__name__}, got {type(value).__name__}")

    return hook


_COLLECTIONS: dict[Any, Callable[[list[Any]], Any]] = {
    list: list,
    tuple: tuple,
    set: set,
    frozenset: frozenset,
    cabc.Sequence: list,
    cabc.MutableSequence: list,
    cabc.Set: frozenset,
    cabc.MutableSet: set,
}


def _is_collection(tp: Any) -> bool:
    return typing.get_origin(tp) in _COLLECTIONS and bool(typing.get_args(tp))


def _collection_hook(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """Structure a collection from a list only (never from a str or a dict)."""
    from cattrs.errors import IterableValidationError, IterableValidationNote

    make = _COLLECTIONS[typing.get_origin(tp)]
    args = typing.get_args(tp)
    fixed = typing.get_origin(tp) is tuple and not (
        len(args) == 2 and args[1] is Ellipsis
    )

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, list | tuple | set | frozenset):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        if fixed and len(value) != len(args):
            raise ValueError(f"expected {len(args)} items, got {len(value)}")
        out: list[Any] = []
        errors: list[Exception] = []
        for i, item in enumerate(value):
            item_tp = args[i] if fixed else args[0]
            try:
                out.append(conv.structure(item, item_tp))
            except Exception as exc:
                exc.add_note(IterableValidationNote(f"@ index {i}", i, item_tp))
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
        return make(out)

    return hook


def _identity(value: Any, _: Any) -> Any:
    return value


def _structure_datetime(value: Any, _: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO datetime string, got {type(value).__name__}")
    return dt.datetime.fromisoformat(value)


@functools.cache
def args_converter() -> cattrs.Converter:
    """The cattrs converter that carries typed args across a wire.

    Register hooks on it for field types it cannot handle. Primitive fields
    are strict (no `"5"` for an `int`); datetimes travel as ISO strings.
    """
    import cattrs  # lazily: keeps cattrs off the core's import path

    conv = cattrs.Converter(detailed_validation=True)
    for tp in (int, float, str, bool, bytes):
        conv.register_structure_hook(tp, _structure_strict(tp))
    conv.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    conv.register_structure_hook_factory(_is_collection, _collection_hook)
    conv.register_structure_hook_func(lambda t: t is object, _identity)
    return conv


_PLAIN_SCALARS = (types.NoneType, bool, int, float, str, bytes)


def _plain(value: Any, path: str) -> Any:
    tp = type(value)
    if tp in _PLAIN_SCALARS:
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value, path)
    if isinstance(value, int):  # int subclasses (bool is exact above)
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):  # str subclasses: typed state names, StrEnum
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ArgsError(
                    f"{path} has the key {k!r}: only string keys cross the wire",
                    field=path,
                )
            out[k] = _plain(v, f"{path}[{k!r}]")
        return out
    raise ArgsError(
        f"{path} holds {tp.__name__} {_short(value)}, which cannot cross the wire",
        field=path,
    )


def args_to_wire(args: Mapping[str, Any]) -> dict[str, Any]:
    """Turn mutation args into plain data that msgpack or JSON can carry.

    Typed args objects become `{"__am_args__": key, "fields": {...}}`;
    plain values must be plain already (tuples and sets become lists).
    A value that cannot cross raises `ArgsError` naming it.
    """
    out: dict[str, Any] = {}
    conv: cattrs.Converter | None = None
    for key, value in args.items():
        cls = type(value)
        args_key = getattr(cls, "__am_args_key__", None)
        if args_key is None:
            out[key] = _plain(value, f"args[{key!r}]")
            continue
        if conv is None:
            conv = args_converter()
        data = conv.unstructure(value)
        name = cls.__name__
        fields = {f: _plain(v, f"{name}.{f}") for f, v in data.items()}
        out[key] = {WIRE_TAG: args_key, "fields": fields}
    return out


def args_from_wire(data: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild mutation args from `args_to_wire` data.

    Typed args become instances of their registered classes again; plain
    values are kept. Malformed data raises `ArgsError` naming the field.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and WIRE_TAG in value:
            out[key] = _rebuild(key, value)
        else:
            out[key] = value
    return out


def _format_exception(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, KeyError) or not str(exc):
        from cattrs.v import format_exception

        return format_exception(exc, tp)
    return str(exc)


def _rebuild(key: str, value: Mapping[str, Any]) -> Any:
    import cattrs

    args_key = value[WIRE_TAG]
    cls = _REGISTRY.get(args_key) if isinstance(args_key, str) else None
    if cls is None:
        raise ArgsError(f"args[{key!r}] names an unknown args class {args_key!r}")
    fields = value.get("fields")
    if not isinstance(fields, Mapping):
        raise ArgsError(
            f"args[{key!r}] ({cls.__name__}) has no fields mapping", field=key
        )
    try:
        return args_converter().structure(fields, cls)
    except Exception as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            problems = "; ".join(
                cattrs.transform_error(exc, cls.__name__, _format_exception)
            )
        else:
            problems = f"{type(exc).__name__}: {exc}"
        raise ArgsError(
            f"cannot rebuild {cls.__name__} from args[{key!r}]: {problems}", field=key
        ) from None
