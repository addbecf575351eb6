"""Pipes: a state of one machine drives states of another.

Every pipe binds its own small handler object to the source machine (a
machine calls the same handler name on every bound object, in binding
order), so pipes compose with each other and with the user's handlers.
The handlers mutate the target directly: if the target is idle the
mutation runs at once, if it is busy (a transition of its own is running)
it is queued, and if it runs in another thread it is sent through that
machine's inbox. Mutations never block, so pipes in both directions
cannot deadlock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, final

from .._machine import CoreMachine
from .._transition import Event
from .._types import EXCEPTION, MachineDisposedError, StateNameError

__all__ = [
    "Pipe",
    "PipeHandler",
    "add",
    "add_flat",
    "bind",
    "bind_any",
    "bind_connected",
    "bind_err",
    "bind_many",
    "bind_ready",
    "bind_start",
    "pipe_add",
    "pipe_remove",
    "remove",
    "remove_flat",
    "sync",
]

_ERR_PREFIX: Final = "Err"

Handler = Callable[[Event], None]


@final
class Pipe:
    """A live binding of source states to target states.

    `close()` removes it (call it from the source machine's thread); it
    also stops for good when either machine is disposed.
    """

    __slots__ = ("_closed", "_unsubs", "binding_id", "kind", "source", "target")

    def __init__(
        self, source: CoreMachine, target: CoreMachine, kind: str, binding_id: str
    ) -> None:
        self.source: CoreMachine = source
        """The machine whose states are watched."""
        self.target: CoreMachine = target
        """The machine that is mutated."""
        self.kind: str = kind
        """What the pipe does, like `bind Foo->Bar/Bar`."""
        self.binding_id: str = binding_id
        """Id of the handler binding on the source."""
        self._closed = False
        self._unsubs: list[Callable[[], None]] = []

    @property
    def closed(self) -> bool:
        """True once closed or once either machine was disposed."""
        return self._closed

    def close(self) -> None:
        """Stop piping: detach the pipe's handlers from the source."""
        self._closed = True
        self._detach()
        # forget the dispose callbacks: a closed pipe holds nothing
        unsubs, self._unsubs = self._unsubs, []
        for unsub in unsubs:
            unsub()

    def _watch_dispose(self) -> None:
        self._unsubs = [
            self.source.on_dispose(self._on_dispose),
            self.target.on_dispose(self._on_dispose),
        ]

    def _detach(self) -> None:
        source = self.source
        if not source.disposed and self.binding_id in source.binding_ids:
            source.detach_handlers(self.binding_id)

    def _on_dispose(self) -> None:
        # may run in the other machine's thread: only flag it here, the
        # source's own handlers detach on their next call
        self._closed = True

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Pipe {self.kind} {self.source.id}->{self.target.id} {state}>"


def _check_machines(source: object, target: object) -> None:
    for name, mach in (("source", source), ("target", target)):
        if not isinstance(mach, CoreMachine):
            raise TypeError(f"{name} must be a Machine, got {type(mach).__name__}")
    if source is target:
        raise ValueError("a pipe needs two different machines")
    for name, mach in (("source", source), ("target", target)):
        assert isinstance(mach, CoreMachine)
        if mach.disposed:
            raise MachineDisposedError(f"{name} machine {mach.id} is disposed")


def _check_state(mach: CoreMachine, state: object, role: str) -> str:
    if not isinstance(state, str):
        raise TypeError(f"{role} must be a state name, got {state!r}")
    if not mach.has1(state):
        raise StateNameError(state, mach.id)
    return state


def _err_of(source: CoreMachine, e: Event) -> BaseException | None:
    err = e.args.get("err")
    return err if isinstance(err, BaseException) else source.err


def _adder(pipe: Pipe, state: str, err: bool) -> Handler:
    """A final handler adding `state` to the target (with `Exception` and
    the source's error for error states)."""
    source, target = pipe.source, pipe.target

    def handler(e: Event) -> None:
        if pipe._closed:
            pipe._detach()
            return
        args = dict(e.args)
        if not err:
            target.add1(state, args)
            return
        exc = _err_of(source, e)
        if exc is not None:
            target.add_err_state(state, exc, args)
        elif state == EXCEPTION:
            target.add1(state, args)
        else:
            target.add([state, EXCEPTION], args)

    return handler


def _remover(pipe: Pipe, state: str) -> Handler:
    target = pipe.target

    def handler(e: Event) -> None:
        if pipe._closed:
            pipe._detach()
            return
        target.remove1(state, dict(e.args))

    return handler


def _is_err_state(target: CoreMachine, state: str) -> bool:
    return state == EXCEPTION or (
        state.startswith(_ERR_PREFIX) and target.has1(EXCEPTION)
    )


def _install(
    source: CoreMachine,
    target: CoreMachine,
    kind: str,
    build: Callable[[Pipe], dict[str, Handler]],
) -> Pipe:
    binding_id = f"pipe-{target.id}-{os.urandom(3).hex()}"
    pipe = Pipe(source, target, kind, binding_id)
    methods = build(pipe)
    # one small class per pipe: each handler is a plain method of it
    attrs: dict[str, Any] = {name: _as_method(fn) for name, fn in methods.items()} | {
        "__slots__": ()
    }
    obj = type("PipeHandlers", (), attrs)()
    source.bind_handlers(obj, id=binding_id)
    pipe._watch_dispose()
    return pipe


def _as_method(fn: Handler) -> Callable[[object, Event], None]:
    def method(self: object, e: Event) -> None:
        fn(e)

    return method


def _pairs(
    source: CoreMachine,
    target: CoreMachine,
    states: Sequence[str],
    target_states: Sequence[str],
) -> list[tuple[str, str]]:
    if len(states) != len(target_states):
        raise ValueError(
            f"{len(states)} source states but {len(target_states)} target states"
        )
    dups = sorted({s for s in states if states.count(s) > 1})
    if dups:
        raise ValueError(f"source state {dups[0]!r} is listed twice")
    return [
        (_check_state(source, s, "source state"), _check_state(target, t, "state"))
        for s, t in zip(states, target_states, strict=True)
    ]


def _list(value: Iterable[str], what: str) -> list[str]:
    if isinstance(value, str):
        raise TypeError(f"{what} must be a list of names, not the string {value!r}")
    return list(value)


# ------------------------------------------------------------------- pipes


def pipe_add(
    source: CoreMachine, target: CoreMachine, state: str, target_state: str = ""
) -> Pipe:
    """When `state` activates in `source`, add `target_state` (default:
    the same name) to `target`, with a copy of the source's args.

    An error target state (`Exception`, or a name starting with `Err` when
    the target has `Exception`) is added with `add_err_state` and the
    source's error.
    """
    _check_machines(source, target)
    state = _check_state(source, state, "state")
    tstate = _check_state(target, target_state or state, "target_state")
    err = _is_err_state(target, tstate)
    return _install(
        source,
        target,
        f"add {state}->{tstate}",
        lambda p: {state + "State": _adder(p, tstate, err)},
    )


def pipe_remove(
    source: CoreMachine, target: CoreMachine, state: str, target_state: str = ""
) -> Pipe:
    """When `state` deactivates in `source`, remove `target_state` (default:
    the same name) from `target`."""
    _check_machines(source, target)
    state = _check_state(source, state, "state")
    tstate = _check_state(target, target_state or state, "target_state")
    return _install(
        source,
        target,
        f"remove {state}->{tstate}",
        lambda p: {state + "End": _remover(p, tstate)},
    )


def bind(
    source: CoreMachine,
    target: CoreMachine,
    state: str,
    active_state: str = "",
    inactive_state: str = "",
) -> Pipe:
    """Mirror `state` of `source` in `target`: add `active_state` when it
    activates, remove `inactive_state` when it deactivates.

    `active_state` defaults to `state`, `inactive_state` to `active_state`.
    """
    _check_machines(source, target)
    state = _check_state(source, state, "state")
    on = _check_state(target, active_state or state, "active_state")
    off = _check_state(target, inactive_state or on, "inactive_state")
    err = _is_err_state(target, on)
    return _install(
        source,
        target,
        f"bind {state}->{on}/{off}",
        lambda p: {
            state + "State": _adder(p, on, err),
            state + "End": _remover(p, off),
        },
    )


def bind_many(
    source: CoreMachine,
    target: CoreMachine,
    states: Iterable[str],
    target_states: Iterable[str] | None = None,
) -> Pipe:
    """`bind` for several states in one pipe (one handler object);
    `target_states` (default: the same names) pairs up with `states`."""
    _check_machines(source, target)
    names = _list(states, "states")
    pairs = _pairs(
        source,
        target,
        names,
        names if target_states is None else _list(target_states, "target_states"),
    )

    def build(p: Pipe) -> dict[str, Handler]:
        methods: dict[str, Handler] = {}
        for s, t in pairs:
            methods[s + "State"] = _adder(p, t, _is_err_state(target, t))
            methods[s + "End"] = _remover(p, t)
        return methods

    label = " ".join(f"{s}->{t}" for s, t in pairs)
    return _install(source, target, f"bind_many {label}", build)


def bind_err(
    source: CoreMachine, target: CoreMachine, target_state: str = EXCEPTION
) -> Pipe:
    """Pipe the source's errors: when `Exception` activates in `source`,
    add `target_state` (default and `""`: `Exception`; else it and
    `Exception`) to `target` with the source's error as the target's `err`."""
    _check_machines(source, target)
    tstate = _check_state(target, target_state or EXCEPTION, "target_state")
    return _install(
        source,
        target,
        f"err {EXCEPTION}->{tstate}",
        lambda p: {EXCEPTION + "State": _adder(p, tstate, True)},
    )


def bind_ready(
    source: CoreMachine,
    target: CoreMachine,
    active_state: str = "Ready",
    inactive_state: str = "",
) -> Pipe:
    """`bind` for the conventional `Ready` state of `source`."""
    return bind(source, target, "Ready", active_state, inactive_state)


def bind_start(
    source: CoreMachine,
    target: CoreMachine,
    active_state: str = "Start",
    inactive_state: str = "",
) -> Pipe:
    """`bind` for the conventional `Start` state of `source`."""
    return bind(source, target, "Start", active_state, inactive_state)


_CONNECTED_STATES: Final = ("Disconnected", "Connecting", "Connected", "Disconnecting")


def bind_connected(
    source: CoreMachine,
    target: CoreMachine,
    disconnected: str = "",
    connecting: str = "",
    connected: str = "",
    disconnecting: str = "",
) -> Pipe:
    """`bind` the four states of a connection (`asyncmachine.states`'
    `ConnectedStates`) of `source` to target states, in one pipe.

    Each target state is optional (`""`: not piped), at least one is needed:
    `bind_connected(client, app, connected="ServerUp")`.
    """
    _check_machines(source, target)
    chosen = (disconnected, connecting, connected, disconnecting)
    pairs = [(s, t) for s, t in zip(_CONNECTED_STATES, chosen, strict=True) if t]
    if not pairs:
        raise ValueError("bind_connected needs at least one target state")
    pairs = _pairs(source, target, [s for s, _ in pairs], [t for _, t in pairs])

    def build(p: Pipe) -> dict[str, Handler]:
        methods: dict[str, Handler] = {}
        for s, t in pairs:
            methods[s + "State"] = _adder(p, t, _is_err_state(target, t))
            methods[s + "End"] = _remover(p, t)
        return methods

    label = " ".join(f"{s}->{t}" for s, t in pairs)
    return _install(source, target, f"connected {label}", build)


def bind_any(source: CoreMachine, target: CoreMachine) -> Pipe:
    """Mirror the whole machine: after every accepted transition of
    `source`, make `target`'s activity of the source's states the same
    (one `set` that keeps the target's other active states). `target`
    needs every state of `source`."""
    _check_machines(source, target)
    missing = [s for s in source.state_names if not target.has1(s)]
    if missing:
        raise StateNameError(missing[0], target.id)

    names = frozenset(source.state_names)

    def build(p: Pipe) -> dict[str, Handler]:
        def any_state(e: Event) -> None:
            if p._closed:
                p._detach()
                return
            # target-only states stay as they are
            wanted = source.active_states
            wanted += [s for s in target.active_states if s not in names]
            if set(target.active_states) != set(wanted):
                target.set(wanted, dict(e.args))

        return {"AnyState": any_state}

    return _install(source, target, "any", build)


def sync(
    source: CoreMachine,
    target: CoreMachine,
    states: Iterable[str],
    target_states: Iterable[str] | None = None,
) -> int:
    """Copy the current activity of `states` in `source` to `target_states`
    (default: the same names) once; return how many states were synced.

    Useful when (re)connecting a pipe: `sync` first, then pipe the changes.
    """
    _check_machines(source, target)
    names = _list(states, "states")
    pairs = _pairs(
        source,
        target,
        names,
        names if target_states is None else _list(target_states, "target_states"),
    )
    add = [t for s, t in pairs if source.is1(s)]
    remove = [t for s, t in pairs if not source.is1(s)]
    if add:
        target.add(add)
    if remove:
        target.remove(remove)
    return len(pairs)


# ---------------------------------------------------------- manual piping


@final
class PipeHandler:
    """A final handler that pipes one state into another machine (made by
    `add`, `remove`, `add_flat`, `remove_flat`).

    Put it in a handler object of the source, under the source state's
    `State` or `End` name; it stops (does nothing) once either machine was
    disposed.
    """

    __slots__ = ("_fn", "_pipe")

    def __init__(self, pipe: Pipe, fn: Handler) -> None:
        self._pipe = pipe
        self._fn = fn

    @property
    def pipe(self) -> Pipe:
        """The pipe's description (source, target, kind, `closed`)."""
        return self._pipe

    def __call__(self, e: Event) -> None:
        if not self._pipe._closed:
            self._fn(e)

    def __repr__(self) -> str:
        return f"<PipeHandler {self._pipe.kind} {self._pipe.source.id}->{self._pipe.target.id}>"


def _manual(
    source: CoreMachine,
    target: CoreMachine,
    state: str,
    target_state: str,
    kind: str,
) -> tuple[Pipe, str]:
    _check_machines(source, target)
    state = _check_state(source, state, "state")
    tstate = _check_state(target, target_state or state, "target_state")
    pipe = Pipe(source, target, f"{kind} {state}->{tstate}", "")
    pipe._watch_dispose()
    return pipe, tstate


def add(
    source: CoreMachine, target: CoreMachine, state: str, target_state: str = ""
) -> PipeHandler:
    """A `FooState` handler for manual piping (Go: `pipes.Add`): adds
    `target_state` (default: `state`) to `target` with a copy of the args.

    ```
    class Piped:
        FooState = pipes.add(source, target, "Foo", "RemoteFoo")
        FooEnd = pipes.remove(source, target, "Foo", "RemoteFoo")


    source.bind_handlers(Piped())
    ```

    Error target states bring the source's error along, as in `pipe_add`.
    """
    pipe, tstate = _manual(source, target, state, target_state, "add")
    return PipeHandler(pipe, _adder(pipe, tstate, _is_err_state(target, tstate)))


def remove(
    source: CoreMachine, target: CoreMachine, state: str, target_state: str = ""
) -> PipeHandler:
    """A `FooEnd` handler for manual piping (Go: `pipes.Remove`): removes
    `target_state` (default: `state`) from `target`."""
    pipe, tstate = _manual(source, target, state, target_state, "remove")
    return PipeHandler(pipe, _remover(pipe, tstate))


def add_flat(
    source: CoreMachine, target: CoreMachine, state: str, target_state: str = ""
) -> PipeHandler:
    """`add` that skips needless mutations (Go: `pipes.AddFlat`): nothing
    happens while `target_state` is active in `target`, and no args are
    passed. Suits Multi source states (a re-activation is not piped)."""
    pipe, tstate = _manual(source, target, state, target_state, "add_flat")
    err = _is_err_state(target, tstate)
    names = [tstate] if tstate == EXCEPTION or not err else [tstate, EXCEPTION]
    # an error state still brings the source's error along
    adder = _adder(pipe, tstate, err)

    def handler(e: Event) -> None:
        if target.is_(names):
            return
        if err:
            adder(e)
        else:
            target.add1(tstate)

    return PipeHandler(pipe, handler)


def remove_flat(
    source: CoreMachine, target: CoreMachine, state: str, target_state: str = ""
) -> PipeHandler:
    """`remove` that skips needless mutations (Go: `pipes.RemoveFlat`):
    nothing happens while `target_state` is inactive, no args are passed."""
    pipe, tstate = _manual(source, target, state, target_state, "remove_flat")

    def handler(e: Event) -> None:
        if target.is1(tstate):
            target.remove1(tstate)

    return PipeHandler(pipe, handler)
