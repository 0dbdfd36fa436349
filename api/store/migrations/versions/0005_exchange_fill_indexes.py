"""the exchange: index trades by order, so an order's fills are found without scanning the instrument's trades

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:00:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_exchange_trades_buy_order", "exchange_trades", ["instrument", "buy_order_id"])
    op.create_index("ix_exchange_trades_sell_order", "exchange_trades", ["instrument", "sell_order_id"])


def downgrade() -> None:
    op.drop_index("ix_exchange_trades_sell_order", table_name="exchange_trades")
    op.drop_index("ix_exchange_trades_buy_order", table_name="exchange_trades")
