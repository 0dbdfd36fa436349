"""`carbon ledger` and `carbon approvals` commands (registered by `pipelines.cli.build_parser`).

The CLI acts as the officer ``cli:<os user>`` through the same services as the API: an officer's
transfer, a deposit, a reversal and a release are proposed and need a second officer's approval
(`carbon approvals approve ID --digest ...` by another officer, or the API). Output is JSON; a refusal
prints ``{"code": ..., "detail": ...}`` and exits 2; `carbon ledger verify` exits 1 when the ledger
does not verify.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pipelines.cli import cli_actor

EXIT_INVALID = 2
#: The services that register four-eyes executors (``api.services.approvals.executor``).
EXECUTOR_SERVICES = ("transfers", "encumbrances", "allocation", "auctions", "compliance")


def quantity_argument(text: str) -> int | Decimal | str:
    """An int when the text is one; otherwise the number (or text) as given, for the ledger to name what is wrong."""
    try:
        return int(text)
    except ValueError:
        try:
            return Decimal(text)
        except InvalidOperation:
            return text


def _run(args: argparse.Namespace, action: Callable[[Any, Any], Any], *, commit: bool = False) -> int:
    """Run ``action(session, actor)`` in one session, print its JSON; not-found errors exit 2 like refusals."""
    from api.services.approvals import ApprovalNotFoundError
    from api.store.db import session_factory
    from pipelines.cli import _print_json
    from pipelines.settings import get_settings

    for service in EXECUTOR_SERVICES:  # their executors carry out what `carbon approvals approve` approves
        importlib.import_module(f"api.services.{service}")
    with session_factory(get_settings())() as session:
        try:
            result = action(session, cli_actor("officer"))
        except ApprovalNotFoundError as err:
            _print_json({"code": err.code, "detail": str(err)})
            return EXIT_INVALID
        if commit:
            session.commit()
    if isinstance(result, tuple):  # (status, document) of a change
        result = result[1]
    _print_json(result)
    if getattr(args, "ledger_command", None) in ("verify", "rebuild"):
        return 0 if result["ok"] else 1
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    """``carbon ledger ...``: accounts, transfers, deposits, reversals, encumbrances, verification."""
    from api.services import encumbrances, ledger, transfers

    command = args.ledger_command
    if command == "accounts":
        return _run(args, lambda s, a: transfers.list_accounts(s, actor=a, kind=args.kind, limit=args.limit,
                                                               offset=args.offset))
    if command == "show":
        if args.entries:
            return _run(args, lambda s, a: transfers.account_entries(s, account_id=args.account_id,
                                                                     limit=args.limit, offset=args.offset))
        return _run(args, lambda s, a: transfers.account_detail(s, account_id=args.account_id))
    if command == "verify":
        return _run(args, lambda s, a: ledger.verify(s))
    if command == "rebuild":
        return _run(args, lambda s, a: ledger.rebuild_balances(s, actor=a))
    if command == "encumbrances":
        return _run(args, lambda s, a: encumbrances.list_encumbrances(
            s, actor=a, account_id=args.account, in_force=not args.all, limit=args.limit, offset=args.offset))
    changes: dict[str, Callable[[Any, Any], Any]] = {
        "open": lambda s, a: transfers.open_holder_account(s, actor=a, account_id=args.account_id, kind=args.kind,
                                                           owner_id=args.owner, name=args.name or ""),
        "transfer": lambda s, a: transfers.transfer(s, actor=a, from_account=args.from_account,
                                                    to_account=args.to_account, instrument=args.instrument,
                                                    quantity=args.quantity, memo=args.memo),
        "deposit": lambda s, a: transfers.propose_deposit(s, actor=a, account_id=args.account_id,
                                                          quantity=args.fen, memo=args.memo),
        "reverse": lambda s, a: transfers.propose_reversal(s, actor=a, entry_id=args.entry_id, memo=args.memo),
        "freeze": lambda s, a: encumbrances.freeze(s, actor=a, account_id=args.account_id,
                                                   instrument=args.instrument, quantity=args.quantity,
                                                   reason=args.reason),
        "release": lambda s, a: encumbrances.propose_release(s, actor=a, encumbrance_id=args.encumbrance_id,
                                                             reason=args.reason),
    }
    return _run(args, changes[command], commit=True)


def cmd_approvals(args: argparse.Namespace) -> int:
    """``carbon approvals ...``: what officers proposed; approve or reject another officer's proposal."""
    from api.services import approvals

    command = args.approvals_command
    if command == "list":
        def listed(session: Any, _: Any) -> dict[str, Any]:
            total, items = approvals.listed(session, status=args.status, limit=args.limit, offset=args.offset)
            return {"total": total, "items": items}
        return _run(args, listed)
    if command == "show":
        return _run(args, lambda s, a: approvals.get(s, args.approval_id))
    return _run(args, lambda s, a: approvals.decide(s, approval_id=args.approval_id, decision=command,
                                                    payload_digest=args.digest, actor=a, comment=args.comment))


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--offset", type=int, default=0)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `carbon ledger` and `carbon approvals` to the `carbon` parser."""
    ledger = commands.add_parser("ledger", help="the carbon-rights ledger (acts as the officer cli:<os user>)")
    sub = ledger.add_subparsers(dest="ledger_command", required=True)
    accounts = sub.add_parser("accounts", help="every account")
    accounts.add_argument("--kind", help="only accounts of this kind (compliance, trader, lender, issuance...)")
    _paging(accounts)
    show = sub.add_parser("show", help="an account's holdings (balance, frozen, pledged, available, pledge value)")
    show.add_argument("account_id")
    show.add_argument("--entries", action="store_true", help="the account's statement instead, newest first")
    _paging(show)
    opened = sub.add_parser("open", help="open a trader or lender account")
    opened.add_argument("account_id")
    opened.add_argument("--kind", required=True, choices=("trader", "lender"))
    opened.add_argument("--owner", required=True, help="who owns it (a trader, a bank)")
    opened.add_argument("--name")
    move = sub.add_parser("transfer", help="propose an officer's transfer (a second officer approves)")
    move.add_argument("from_account")
    move.add_argument("to_account")
    move.add_argument("instrument", help="CEA-<year>, CCER, SO2, NOX, COD, NH3N or CNY")
    move.add_argument("quantity", type=quantity_argument, help="whole t, kg or fen")
    move.add_argument("--memo", default="")
    deposit = sub.add_parser("deposit", help="propose simulated cash from SYS-BANK into an account (four eyes)")
    deposit.add_argument("account_id")
    deposit.add_argument("fen", type=quantity_argument)
    deposit.add_argument("--memo", default="")
    reverse = sub.add_parser("reverse", help="propose the reversing entry of a journal entry (four eyes)")
    reverse.add_argument("entry_id")
    reverse.add_argument("--memo", default="")
    freeze = sub.add_parser("freeze", help="freeze available units at once")
    freeze.add_argument("account_id")
    freeze.add_argument("instrument")
    freeze.add_argument("quantity", type=quantity_argument)
    freeze.add_argument("--reason", required=True)
    release = sub.add_parser("release", help="propose releasing a freeze or pledge (four eyes)")
    release.add_argument("encumbrance_id")
    release.add_argument("--reason", required=True)
    listed = sub.add_parser("encumbrances", help="freezes and pledges in force")
    listed.add_argument("--account")
    listed.add_argument("--all", action="store_true", help="released ones too")
    _paging(listed)
    sub.add_parser("verify", help="rebuild balances from the journal and check conservation (exit 1 if not ok)")
    sub.add_parser("rebuild", help="rewrite the stored balances from the journal (audited), then verify")
    ledger.set_defaults(handler=cmd_ledger)

    approvals = commands.add_parser("approvals", help="four eyes: officers' proposals (acts as cli:<os user>)")
    decisions = approvals.add_subparsers(dest="approvals_command", required=True)
    listing = decisions.add_parser("list", help="proposals, newest first")
    listing.add_argument("--status", choices=("pending", "approved", "rejected"))
    _paging(listing)
    decisions.add_parser("show", help="one proposal and its payload digest").add_argument("approval_id")
    for name, text in (("approve", "approve (and carry out) another officer's proposal"),
                       ("reject", "reject a proposal")):
        decide = decisions.add_parser(name, help=text)
        decide.add_argument("approval_id")
        decide.add_argument("--digest", required=True, help="the payload_digest you reviewed (`approvals show`)")
        decide.add_argument("--comment")
    approvals.set_defaults(handler=cmd_approvals)
