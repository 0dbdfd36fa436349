"""`carbon` commands of the carbon-rights allocation (registered by `pipelines.cli.build_parser`).

``carbon allocation load FILE | list | show PLAN_ID VERSION | show --enterprise ID | pre-allocate PLAN_ID VERSION |
true-up PLAN_ID VERSION --outputs FILE.json`` and ``carbon auction create ... | list | show ID | bid ID --account
ACCOUNT --price FEN --quantity T | bids ID | withdraw ID BID_ID --account ACCOUNT | close ID | report ID``: the same
services as the API, one transaction each, through ``run_once`` (``--idempotency-key`` repeats a call safely).
The CLI acts as ``cli:<os user>``: an officer for plans and auctions (pre-allocation, true-up and the settlement
at close are proposals; a second officer approves them: POST /v1/approvals/{approval_id}/decision), and as the
owner of the named account for a bid or a withdrawal (the operator bids on its behalf; audited as
``cli:<os user>``). A refusal prints its code as JSON and exits 2 (``pipelines.cli.main``).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines.cli import cli_actor

NEXT = "a second officer approves it: POST /v1/approvals/{approval_id}/decision"


def _owner_of(account_id: str) -> Any:
    """The identity of the account's owner: the enterprise of a compliance account, else a trader."""
    if account_id.startswith("CA-"):
        return cli_actor("enterprise", enterprise_ids=frozenset({account_id[3:]}))
    return cli_actor("trader", account_ids=frozenset({account_id}))


def _key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idempotency-key", default=None,
                        help="repeat a call safely: the same key returns the first answer (default: a new key)")


def _once(session: Any, args: argparse.Namespace, *, actor: Any, operation: str, body: Any, status: int,
          change: Any) -> dict[str, Any]:
    import uuid

    from api.services.idempotency import run_once

    outcome = run_once(session, actor_id=actor.actor_id, key=args.idempotency_key or uuid.uuid4().hex,
                       operation=operation, body=body, change=lambda: (status, change()))
    return {**outcome.body, "replayed": outcome.replayed}


def cmd_allocation(args: argparse.Namespace) -> int:
    """``carbon allocation ...``: plans, their preview, pre-allocation and true-up proposals."""
    from api.services import allocation
    from api.store.db import session_factory
    from pipelines.cli import _print_json
    from pipelines.settings import get_settings

    command = args.allocation_command
    officer = cli_actor("officer")
    with session_factory(get_settings())() as session:
        if command == "load":
            path = Path(args.file)
            if not path.is_file():
                _print_json({"code": "file_not_found", "detail": f"no such file: {args.file}"})
                return 2
            text = path.read_text(encoding="utf-8-sig")
            _print_json(_once(session, args, actor=officer, operation="allocation.load_plan",
                              body={"content": text}, status=201,
                              change=lambda: allocation.load_plan(session, actor=officer, content=text,
                                                                  source=path.name)))
        elif command == "list":
            _print_json({"items": allocation.list_plans(session)})
        elif command == "show" and args.enterprise:
            _print_json(allocation.enterprise_allocation(session, enterprise_id=args.enterprise))
        elif command == "show":
            if args.plan_id is None or args.version is None:
                _print_json({"code": "missing_value", "detail": "name PLAN_ID VERSION or --enterprise ID"})
                return 2
            _print_json(allocation.get_plan(session, plan_id=args.plan_id, version=args.version))
        elif command == "pre-allocate":
            _print_json({**_once(session, args, actor=officer, operation="allocation.pre",
                                 body={"plan_id": args.plan_id, "version": args.version}, status=202,
                                 change=lambda: allocation.propose_pre_allocation(
                                     session, actor=officer, plan_id=args.plan_id, version=args.version)),
                         "next": NEXT})
        else:
            raw = json.loads(Path(args.outputs).read_text(encoding="utf-8"), parse_float=Decimal)
            outputs = {e: {k: Decimal(str(v)) for k, v in lines.items()} for e, lines in raw.items()}
            body = {"plan_id": args.plan_id, "version": args.version,
                    "actual_outputs": {e: {k: str(v) for k, v in lines.items()} for e, lines in outputs.items()}}
            _print_json({**_once(session, args, actor=officer, operation="allocation.true_up", body=body,
                                 status=202, change=lambda: allocation.propose_true_up(
                                     session, actor=officer, plan_id=args.plan_id, version=args.version,
                                     actual_outputs=outputs)),
                         "next": NEXT})
    return 0


def cmd_auction(args: argparse.Namespace) -> int:
    """``carbon auction ...``: create, bid, withdraw, close (settlement proposal) and report."""
    from api.services import auctions
    from api.store.db import session_factory
    from pipelines.cli import _print_json
    from pipelines.settings import get_settings

    command = args.auction_command
    officer = cli_actor("officer")
    with session_factory(get_settings())() as session:
        if command == "create":
            terms = {"auction_id": args.auction_id, "instrument": args.instrument, "offered_t": args.offered,
                     "reserve_price_fen": args.reserve_price, "min_bid_t": args.min_bid, "bidder_cap_t": args.cap,
                     "lot_t": args.lot, "opens_at": args.opens, "closes_at": args.closes,
                     "cover_ratio": args.cover_ratio}
            _print_json(_once(session, args, actor=officer, operation="auctions.create",
                              body={k: str(v) for k, v in terms.items()}, status=201,
                              change=lambda: auctions.create_auction(session, actor=officer, **terms)))
        elif command == "list":
            _print_json({"items": auctions.list_auctions(session)})
        elif command == "show":
            _print_json(auctions.get_auction(session, auction_id=args.auction_id))
        elif command == "bids":
            _print_json({"items": auctions.list_bids(session, actor=officer, auction_id=args.auction_id)})
        elif command == "bid":
            owner = _owner_of(args.account)
            body = {"auction_id": args.auction_id, "account_id": args.account, "price_fen": args.price,
                    "quantity_t": args.quantity}
            _print_json(_once(session, args, actor=owner, operation="auctions.bid", body=body, status=201,
                              change=lambda: auctions.place_bid(session, actor=owner, **body)))
        elif command == "withdraw":
            owner = _owner_of(args.account)
            body = {"auction_id": args.auction_id, "bid_id": args.bid_id}
            _print_json(_once(session, args, actor=owner, operation="auctions.withdraw", body=body, status=200,
                              change=lambda: auctions.withdraw_bid(session, actor=owner, **body)))
        elif command == "close":
            _print_json({**_once(session, args, actor=officer, operation="auctions.close",
                                 body={"auction_id": args.auction_id}, status=202,
                                 change=lambda: auctions.close_auction(session, actor=officer,
                                                                       auction_id=args.auction_id)),
                         "next": NEXT})
        else:
            _print_json(auctions.report(session, auction_id=args.auction_id))
    return 0


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text}: give a UTC offset, e.g. 2026-03-02T09:00:00+00:00")
    return moment


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the `carbon` parser."""
    allocation = commands.add_parser("allocation", help="free allocation plans, pre-allocation and true-up")
    sub = allocation.add_subparsers(dest="allocation_command", required=True)
    load = sub.add_parser("load", help="load a versioned allocation plan (TOML) as an officer")
    load.add_argument("file")
    _key(load)
    sub.add_parser("list", help="every loaded plan version")
    show = sub.add_parser("show", help="a plan version with its computed allocation, or an enterprise's allocation")
    show.add_argument("plan_id", nargs="?")
    show.add_argument("version", nargs="?", type=int)
    show.add_argument("--enterprise", default=None, help="an enterprise's free allocation per year instead")
    pre = sub.add_parser("pre-allocate", help="propose the pre-allocation and pollutant rights (four eyes)")
    pre.add_argument("plan_id")
    pre.add_argument("version", type=int)
    _key(pre)
    true_up = sub.add_parser("true-up", help="propose the true-up of locked enterprise-years (four eyes)")
    true_up.add_argument("plan_id")
    true_up.add_argument("version", type=int)
    true_up.add_argument("--outputs", required=True,
                         help='JSON file {"<enterprise id>": {"<benchmark id or product>": output, ...}, ...}')
    _key(true_up)
    allocation.set_defaults(handler=cmd_allocation)

    auction = commands.add_parser("auction", help="sealed-bid, uniform-price auctions of allowances")
    auction_sub = auction.add_subparsers(dest="auction_command", required=True)
    create = auction_sub.add_parser("create", help="open an auction; the offered allowances move to SYS-AUCTION")
    create.add_argument("--auction-id", default=None)
    create.add_argument("--instrument", required=True, help="CEA-<year>")
    create.add_argument("--offered", type=int, required=True, help="tonnes offered")
    create.add_argument("--reserve-price", type=int, required=True, help="fen per tonne")
    create.add_argument("--min-bid", type=int, required=True, help="tonnes")
    create.add_argument("--cap", type=int, required=True, help="per-bidder cap, tonnes")
    create.add_argument("--lot", type=int, default=1, help="tonnes")
    create.add_argument("--opens", type=_aware, required=True, help="ISO time with offset, e.g. ...T09:00:00+00:00")
    create.add_argument("--closes", type=_aware, required=True)
    create.add_argument("--cover-ratio", type=Decimal, default=Decimal(1))
    _key(create)
    auction_sub.add_parser("list", help="every auction")
    auction_sub.add_parser("show", help="an auction").add_argument("auction_id")
    auction_sub.add_parser("bids", help="every bid of an auction (as an officer)").add_argument("auction_id")
    bid = auction_sub.add_parser("bid", help="a sealed bid on behalf of the account's owner; cash reserved")
    bid.add_argument("auction_id")
    bid.add_argument("--account", required=True, help="CA-<enterprise id> or a trading account")
    bid.add_argument("--price", type=int, required=True, help="fen per tonne")
    bid.add_argument("--quantity", type=int, required=True, help="tonnes")
    _key(bid)
    withdraw = auction_sub.add_parser("withdraw", help="withdraw a bid while the window is open")
    withdraw.add_argument("auction_id")
    withdraw.add_argument("bid_id")
    withdraw.add_argument("--account", required=True, help="the bid's account")
    _key(withdraw)
    close = auction_sub.add_parser("close", help="clear after the window and propose the settlement (four eyes)")
    close.add_argument("auction_id")
    _key(close)
    auction_sub.add_parser("report", help="who paid what, after settlement").add_argument("auction_id")
    auction.set_defaults(handler=cmd_auction)
