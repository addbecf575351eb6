"""The expense workflow (after Temporal's expense sample).

An expense is created through an expense API, then waits for an approval
that arrives from outside (here: an approver task sending approval ids over
a memory stream), then is paid through a payment API. The schema does the
sequencing by itself:

- ``CreatingExpense`` and ``ExpenseCreated`` remove each other;
- ``WaitingForApproval`` is an Auto state that requires ``ExpenseCreated``:
  it starts as soon as the expense exists;
- ``ApprovalGranted`` ends the waiting; its negotiation handler accepts only
  an approval for *this* expense's id, so a stray approval is CANCELED;
- ``PaymentInProgress`` is an Auto state that requires ``ApprovalGranted``,
  and ``PaymentCompleted`` ends it.

The two API calls are async final handlers: tasks bound to their state, so
removing the state would cancel the call. A failing API call becomes the
``Exception`` state, which the flow watches with ``when_err``.

Run it with ``python examples/expense.py [--backend asyncio|trio|all]``;
it asserts its own outcome.
"""

from __future__ import annotations

import argparse

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import asyncmachine as am


class S(am.StatesBase):
    """State names of the expense workflow."""

    CreatingExpense = am.state()
    ExpenseCreated = am.state()
    WaitingForApproval = am.state()
    ApprovalGranted = am.state()
    PaymentInProgress = am.state()
    PaymentCompleted = am.state()


SCHEMA: am.Schema = {
    # CreateExpenseActivity
    S.CreatingExpense: am.State(remove=[S.ExpenseCreated]),
    S.ExpenseCreated: am.State(remove=[S.CreatingExpense]),
    # WaitForDecisionActivity
    S.WaitingForApproval: am.State(
        auto=True, require=[S.ExpenseCreated], remove=[S.ApprovalGranted]
    ),
    S.ApprovalGranted: am.State(
        require=[S.ExpenseCreated], remove=[S.WaitingForApproval]
    ),
    # PaymentActivity
    S.PaymentInProgress: am.State(
        auto=True, require=[S.ApprovalGranted], remove=[S.PaymentCompleted]
    ),
    S.PaymentCompleted: am.State(
        require=[S.ExpenseCreated, S.ApprovalGranted], remove=[S.PaymentInProgress]
    ),
}


class Backend:
    """Stand-ins for the expense and payment HTTP APIs."""

    def __init__(self, requests: MemoryObjectSendStream[str]) -> None:
        self.requests = requests
        self.calls: list[str] = []

    async def create_expense(self, expense_id: str) -> str:
        await anyio.lowlevel.checkpoint()
        self.calls.append(f"expense {expense_id}")
        # the expense system asks a human for an approval
        await self.requests.send(expense_id)
        return "SUCCEED"

    async def pay(self, expense_id: str) -> str:
        await anyio.lowlevel.checkpoint()
        self.calls.append(f"payment {expense_id}")
        return "SUCCEED"


class Expense(am.ExceptionHandler):
    """Handlers of one expense."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.expense_id = ""

    async def CreatingExpenseState(self, e: am.Event) -> None:
        self.expense_id = e.args["expense_id"]
        reply = await self.backend.create_expense(self.expense_id)
        if reply != "SUCCEED":
            e.machine.add_err(RuntimeError(f"expense API: {reply}"))
            return
        e.machine.add1(S.ExpenseCreated)

    def ApprovalGrantedEnter(self, e: am.Event) -> bool:
        # only an approval of this very expense
        return bool(e.args.get("approved_id") == self.expense_id)

    async def PaymentInProgressState(self, e: am.Event) -> None:
        reply = await self.backend.pay(self.expense_id)
        if reply != "SUCCEED":
            e.machine.add_err(RuntimeError(f"payment API: {reply}"))
            return
        e.machine.add1(S.PaymentCompleted)


async def approver(
    requests: MemoryObjectReceiveStream[str],
    approvals: MemoryObjectSendStream[str],
) -> None:
    """A person approving expenses: first a wrong id, then the right one."""
    async with requests, approvals:
        expense_id = await requests.receive()
        await approvals.send("fake")
        await approvals.send(expense_id)


async def expense_flow(
    mach: am.Machine, approvals: MemoryObjectReceiveStream[str], expense_id: str
) -> list[am.Result]:
    """Drive one expense to PaymentCompleted; the results of the approvals."""
    err = mach.when_err()
    results: list[am.Result] = []
    mach.add1(S.CreatingExpense, {"expense_id": expense_id})
    await mach.when1(S.WaitingForApproval)
    async with approvals:
        async for approved_id in approvals:
            result = mach.add1(S.ApprovalGranted, {"approved_id": approved_id})
            results.append(result)
            print(f"  approval {approved_id!r}: {result}")
            if mach.is1(S.ApprovalGranted):
                break
    await mach.when1(S.PaymentCompleted)
    assert not err.is_set(), mach.err
    return results


async def main(backend: str) -> None:
    """Run one expense through the workflow and check the outcome."""
    req_send, req_recv = anyio.create_memory_object_stream[str](1)
    appr_send, appr_recv = anyio.create_memory_object_stream[str](1)
    api = Backend(req_send)
    print(f"[{backend}] expense 123")
    async with (
        req_send,
        am.Machine(SCHEMA, id=f"expense-{backend}", handlers=Expense(api)) as mach,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(approver, req_recv, appr_send)
        with anyio.fail_after(10):
            results = await expense_flow(mach, appr_recv, "123")
        print(f"  {mach.string_all()}")
        assert mach.active_states == [
            S.ExpenseCreated,
            S.ApprovalGranted,
            S.PaymentCompleted,
        ]
    assert results == [am.Result.CANCELED, am.Result.EXECUTED]
    assert api.calls == ["expense 123", "payment 123"]


def backends() -> list[str]:
    """The backends chosen with --backend (both by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    chosen = parser.parse_args().backend
    return ["asyncio", "trio"] if chosen == "all" else [chosen]


if __name__ == "__main__":
    for backend in backends():
        anyio.run(main, backend, backend=backend)
