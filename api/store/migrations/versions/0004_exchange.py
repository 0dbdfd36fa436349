"""the mock exchange: instruments, the append-only command log, orders, trades, settlements, days, clock

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The command log and the trades are append-only; replaying the log rebuilds orders, trades and days.
APPEND_ONLY = ("exchange_commands", "exchange_trades")


def upgrade() -> None:
    op.create_table(
        "exchange_instruments",
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("genesis_close_fen", sa.BigInteger(), nullable=False),
        sa.Column("fee_bp", sa.Integer(), nullable=False),
        sa.Column("settlement", sa.String(length=16), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("trading_day", sa.String(length=10), nullable=True),
        sa.Column("day_open", sa.Boolean(), nullable=False),
        sa.Column("previous_close_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("instrument", name=op.f("pk_exchange_instruments")),
    )
    op.create_table(
        "exchange_commands",
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("actor_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["instrument"], ["exchange_instruments.instrument"],
                                name=op.f("fk_exchange_commands_instrument_exchange_instruments")),
        sa.PrimaryKeyConstraint("instrument", "seq", name=op.f("pk_exchange_commands")),
    )
    op.create_table(
        "exchange_orders",
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("order_type", sa.String(length=16), nullable=False),
        sa.Column("time_in_force", sa.String(length=8), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=True),
        sa.Column("quantity_t", sa.BigInteger(), nullable=False),
        sa.Column("filled_t", sa.BigInteger(), nullable=False),
        sa.Column("remaining_t", sa.BigInteger(), nullable=False),
        sa.Column("cancelled_t", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("counterparty_id", sa.String(length=64), nullable=True),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("hold_open_t", sa.BigInteger(), nullable=False),
        sa.Column("placed_by", sa.String(length=255), nullable=False),
        sa.Column("created_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["instrument"], ["exchange_instruments.instrument"],
                                name=op.f("fk_exchange_orders_instrument_exchange_instruments")),
        sa.PrimaryKeyConstraint("instrument", "order_id", name=op.f("pk_exchange_orders")),
        sa.UniqueConstraint("instrument", "account_id", "client_order_id",
                            name=op.f("uq_exchange_orders_instrument")),
    )
    op.create_index("ix_exchange_orders_account", "exchange_orders", ["account_id", "instrument", "order_id"])
    op.create_table(
        "exchange_trades",
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("trade_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("quantity_t", sa.BigInteger(), nullable=False),
        sa.Column("buy_order_id", sa.BigInteger(), nullable=False),
        sa.Column("sell_order_id", sa.BigInteger(), nullable=False),
        sa.Column("buy_account_id", sa.String(length=64), nullable=False),
        sa.Column("sell_account_id", sa.String(length=64), nullable=False),
        sa.Column("aggressor_side", sa.String(length=4), nullable=False),
        sa.Column("buyer_fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("seller_fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("trading_day", sa.String(length=10), nullable=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["instrument"], ["exchange_instruments.instrument"],
                                name=op.f("fk_exchange_trades_instrument_exchange_instruments")),
        sa.PrimaryKeyConstraint("instrument", "trade_id", name=op.f("pk_exchange_trades")),
    )
    op.create_index("ix_exchange_trades_day", "exchange_trades", ["instrument", "trading_day"])
    op.create_index("ix_exchange_trades_buyer", "exchange_trades", ["buy_account_id", "instrument", "trading_day"])
    op.create_index("ix_exchange_trades_seller", "exchange_trades", ["sell_account_id", "instrument"])
    op.create_table(
        "exchange_settlements",
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("trading_day", sa.String(length=10), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=True),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["instrument"], ["exchange_instruments.instrument"],
                                name=op.f("fk_exchange_settlements_instrument_exchange_instruments")),
        sa.PrimaryKeyConstraint("instrument", "trading_day", name=op.f("pk_exchange_settlements")),
    )
    op.create_table(
        "exchange_days",
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("trading_day", sa.String(length=10), nullable=False),
        sa.Column("previous_close_fen", sa.BigInteger(), nullable=False),
        sa.Column("open_fen", sa.BigInteger(), nullable=True),
        sa.Column("high_fen", sa.BigInteger(), nullable=True),
        sa.Column("low_fen", sa.BigInteger(), nullable=True),
        sa.Column("close_fen", sa.BigInteger(), nullable=True),
        sa.Column("listed_volume_t", sa.BigInteger(), nullable=False),
        sa.Column("listed_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("block_volume_t", sa.BigInteger(), nullable=False),
        sa.Column("block_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["instrument"], ["exchange_instruments.instrument"],
                                name=op.f("fk_exchange_days_instrument_exchange_instruments")),
        sa.PrimaryKeyConstraint("instrument", "trading_day", name=op.f("pk_exchange_days")),
    )
    op.create_table(
        "exchange_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("speed", sa.Integer(), nullable=False),
        sa.Column("step_seconds", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_clock")),
    )
    for table in APPEND_ONLY:
        _append_only(table)


def _append_only(table: str) -> None:
    """Database triggers refusing any UPDATE or DELETE on ``table``, on SQLite and PostgreSQL."""
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"create trigger {table}_no_{event.lower()} before {event} on {table} "
                f"begin select raise(abort, '{table} is append-only'); end"
            )
        return
    op.execute(
        f"create function {table}_append_only() returns trigger language plpgsql as $$ "
        f"begin raise exception '{table} is append-only'; end $$"
    )
    op.execute(
        f"create trigger {table}_no_change before update or delete on {table} "
        f"for each row execute function {table}_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table in APPEND_ONLY:
            op.execute(f"drop function if exists {table}_append_only() cascade")
    op.drop_table("exchange_clock")
    op.drop_table("exchange_days")
    op.drop_table("exchange_settlements")
    op.drop_index("ix_exchange_trades_seller", table_name="exchange_trades")
    op.drop_index("ix_exchange_trades_buyer", table_name="exchange_trades")
    op.drop_index("ix_exchange_trades_day", table_name="exchange_trades")
    op.drop_table("exchange_trades")
    op.drop_index("ix_exchange_orders_account", table_name="exchange_orders")
    op.drop_table("exchange_orders")
    op.drop_table("exchange_commands")
    op.drop_table("exchange_instruments")
