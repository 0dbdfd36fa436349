"""`carbon` commands of the carbon-rights compliance (registered by `pipelines.cli.build_parser`).

``carbon compliance report YEAR | show YEAR ENTERPRISE | surrender ENTERPRISE YEAR INSTRUMENT QUANTITY |
close YEAR`` and ``carbon prices record INSTRUMENT DAY PRICE_FEN --volume N --source S | list``: the same
services as the API, one transaction each. The CLI acts as ``cli:<os user>``: an officer for prices and
closing a year (the close is a proposal; a second officer approves it), and as the named enterprise for a
surrender (the operator surrenders on the enterprise's behalf; audited as ``cli:<os user>``). A refusal
prints its code as JSON and exits 2 (``pipelines.cli.main``).
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from pipelines.cli import cli_actor


def _for_enterprise(enterprise_id: str) -> Any:
    return cli_actor("enterprise", enterprise_ids=frozenset({enterprise_id}))


def cmd_compliance(args: argparse.Namespace) -> int:
    """``carbon compliance ...``: the zone report, a balance view, a surrender, a close proposal."""
    import uuid

    from api.services import compliance
    from api.services.idempotency import run_once
    from api.store.db import session_factory
    from pipelines.cli import _print_json
    from pipelines.settings import get_settings

    settings = get_settings()
    key = getattr(args, "idempotency_key", None) or uuid.uuid4().hex
    with session_factory(settings)() as session:
        if args.compliance_command == "report":
            _print_json(compliance.zone_report(session, settings=settings, year=args.year))
        elif args.compliance_command == "show":
            _print_json(compliance.balance_view(session, settings=settings, enterprise_id=args.enterprise_id,
                                                year=args.year))
        elif args.compliance_command == "surrender":
            actor = _for_enterprise(args.enterprise_id)
            body = {"enterprise_id": args.enterprise_id, "year": args.year, "instrument": args.instrument,
                    "quantity": args.quantity}
            outcome = run_once(session, actor_id=actor.actor_id, key=key,
                               operation="compliance.surrender", body=body,
                               change=lambda: (201, compliance.surrender(session, settings=settings, actor=actor,
                                                                         **body)))
            _print_json({**outcome.body, "replayed": outcome.replayed})
        else:
            actor = cli_actor("officer")
            outcome = run_once(session, actor_id=actor.actor_id, key=key,
                               operation="compliance.close", body={"year": args.year},
                               change=lambda: (202, compliance.propose_close(session, settings=settings, actor=actor,
                                                                             year=args.year)))
            _print_json({**outcome.body, "replayed": outcome.replayed,
                         "next": "a second officer approves it: POST /v1/approvals/{approval_id}/decision"})
    return 0


def cmd_prices(args: argparse.Namespace) -> int:
    """``carbon prices record|list``: reference prices of instruments per day."""
    from api.services import prices
    from api.store.db import session_factory
    from pipelines.cli import _print_json
    from pipelines.settings import get_settings

    with session_factory(get_settings())() as session:
        if args.prices_command == "record":
            created, price = prices.record_price(session, actor=cli_actor("officer"), record=prices.PriceRecord(
                instrument=args.instrument, day=args.day, price_fen=args.price_fen, volume=args.volume,
                source=args.source, replace=args.replace))
            _print_json({**price, "created": created})
        else:
            _print_json(prices.list_prices(session, instrument=args.instrument, day_from=args.day_from,
                                           day_to=args.day_to, limit=args.limit, offset=args.offset))
    return 0


def _key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idempotency-key", default=None,
                        help="repeat a call safely: the same key returns the first answer (default: a new key)")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the `carbon` parser."""
    compliance = commands.add_parser("compliance", help="obligations, surrender, balance views, closing a year")
    sub = compliance.add_subparsers(dest="compliance_command", required=True)
    sub.add_parser("report", help="the zone's compliance report of a year").add_argument("year", type=int)
    show = sub.add_parser("show", help="the balance view of an enterprise and year")
    show.add_argument("year", type=int)
    show.add_argument("enterprise_id")
    surrender = sub.add_parser("surrender", help="surrender units for an enterprise's obligation (as the enterprise)")
    surrender.add_argument("enterprise_id")
    surrender.add_argument("year", type=int)
    surrender.add_argument("instrument", help="CEA-<vintage> or CCER")
    surrender.add_argument("quantity", type=int, help="whole tonnes")
    _key(surrender)
    close = sub.add_parser("close", help="propose closing a year after its deadline (four eyes)")
    close.add_argument("year", type=int)
    _key(close)
    compliance.set_defaults(handler=cmd_compliance)

    prices = commands.add_parser("prices", help="reference prices of instruments per day")
    price_commands = prices.add_subparsers(dest="prices_command", required=True)
    record = price_commands.add_parser("record", help="record a day's price (as an officer)")
    record.add_argument("instrument")
    record.add_argument("day", type=date.fromisoformat, help="YYYY-MM-DD")
    record.add_argument("price_fen", type=int, help="fen per unit")
    record.add_argument("--volume", type=int, required=True, help="units traded that day")
    record.add_argument("--source", required=True, help="where the price comes from")
    record.add_argument("--replace", action="store_true", help="correct a price already recorded (audited)")
    listing = price_commands.add_parser("list", help="recorded prices, newest first")
    listing.add_argument("--instrument", default=None)
    listing.add_argument("--from", dest="day_from", type=date.fromisoformat, default=None)
    listing.add_argument("--to", dest="day_to", type=date.fromisoformat, default=None)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    prices.set_defaults(handler=cmd_prices)

