"""the carbon-rights ledger: accounts, journal, balances, encumbrances, counterparties, idempotency,
four-eyes approvals, allocation plans, auctions and reference prices

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: The journal is append-only: corrections are reversing entries.
APPEND_ONLY = ("journal_entries", "journal_postings")


def upgrade() -> None:
    op.create_table(
        "allocation_plans",
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("loaded_by", sa.String(length=255), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", "version", name=op.f("pk_allocation_plans")),
    )
    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("enterprise_id", sa.String(length=18), nullable=False),
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("basis", sa.JSON(), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
        sa.UniqueConstraint(
            "plan_id", "version", "enterprise_id", "instrument", "stage", name=op.f("uq_allocations_plan_id")
        ),
    )
    op.create_index(op.f("ix_allocations_enterprise_id"), "allocations", ["enterprise_id"], unique=False)
    op.create_table(
        "approvals",
        sa.Column("approval_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("payload_digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.String(length=255), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("approval_id", name=op.f("pk_approvals")),
    )
    op.create_index(op.f("ix_approvals_kind"), "approvals", ["kind"], unique=False)
    op.create_index(op.f("ix_approvals_status"), "approvals", ["status"], unique=False)
    op.create_table(
        "auctions",
        sa.Column("auction_id", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("settled_entry_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("auction_id", name=op.f("pk_auctions")),
    )
    op.create_table(
        "idempotency_records",
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=128), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("actor_id", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_table(
        "journal_entries",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("reverses", sa.String(length=64), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("actor_id", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_journal_entries")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_journal_entries_entry_id")),
        sa.UniqueConstraint("reverses", name=op.f("uq_journal_entries_reverses")),
    )
    op.create_index(op.f("ix_journal_entries_reference"), "journal_entries", ["reference"], unique=False)
    op.create_table(
        "ledger_accounts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_ledger_accounts")),
    )
    op.create_index(op.f("ix_ledger_accounts_owner_id"), "ledger_accounts", ["owner_id"], unique=False)
    op.create_table(
        "reference_prices",
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("instrument", "day", name=op.f("pk_reference_prices")),
    )
    op.create_table(
        "auction_bids",
        sa.Column("bid_id", sa.String(length=64), nullable=False),
        sa.Column("auction_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("placed_by", sa.String(length=255), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reserve_entry_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filled", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.account_id"], name=op.f("fk_auction_bids_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["auction_id"], ["auctions.auction_id"], name=op.f("fk_auction_bids_auction_id_auctions")
        ),
        sa.PrimaryKeyConstraint("bid_id", name=op.f("pk_auction_bids")),
    )
    op.create_index(op.f("ix_auction_bids_auction_id"), "auction_bids", ["auction_id"], unique=False)
    op.create_table(
        "journal_postings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.account_id"], name=op.f("fk_journal_postings_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.entry_id"], name=op.f("fk_journal_postings_entry_id_journal_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_postings")),
    )
    op.create_index("ix_journal_postings_account", "journal_postings", ["account_id", "instrument"], unique=False)
    op.create_index(op.f("ix_journal_postings_entry_id"), "journal_postings", ["entry_id"], unique=False)
    op.create_table(
        "ledger_balances",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.account_id"], name=op.f("fk_ledger_balances_account_id_ledger_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "instrument", name=op.f("pk_ledger_balances")),
    )
    op.create_table(
        "ledger_encumbrances",
        sa.Column("encumbrance_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("lender_account_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("imposed_by", sa.String(length=255), nullable=False),
        sa.Column("consent_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.account_id"],
            name=op.f("fk_ledger_encumbrances_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("encumbrance_id", name=op.f("pk_ledger_encumbrances")),
    )
    op.create_index(
        "ix_ledger_encumbrances_key", "ledger_encumbrances", ["account_id", "instrument", "released_at"], unique=False
    )
    op.create_table(
        "trusted_counterparties",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("counterparty_id", sa.String(length=64), nullable=False),
        sa.Column("added_by", sa.String(length=255), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.account_id"],
            name=op.f("fk_trusted_counterparties_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["counterparty_id"],
            ["ledger_accounts.account_id"],
            name=op.f("fk_trusted_counterparties_counterparty_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", "counterparty_id", name=op.f("pk_trusted_counterparties")),
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
    op.drop_table("trusted_counterparties")
    op.drop_index("ix_ledger_encumbrances_key", table_name="ledger_encumbrances")
    op.drop_table("ledger_encumbrances")
    op.drop_table("ledger_balances")
    op.drop_index(op.f("ix_journal_postings_entry_id"), table_name="journal_postings")
    op.drop_index("ix_journal_postings_account", table_name="journal_postings")
    op.drop_table("journal_postings")
    op.drop_index(op.f("ix_auction_bids_auction_id"), table_name="auction_bids")
    op.drop_table("auction_bids")
    op.drop_table("reference_prices")
    op.drop_index(op.f("ix_ledger_accounts_owner_id"), table_name="ledger_accounts")
    op.drop_table("ledger_accounts")
    op.drop_index(op.f("ix_journal_entries_reference"), table_name="journal_entries")
    op.drop_table("journal_entries")
    op.drop_table("idempotency_records")
    op.drop_table("auctions")
    op.drop_index(op.f("ix_approvals_status"), table_name="approvals")
    op.drop_index(op.f("ix_approvals_kind"), table_name="approvals")
    op.drop_table("approvals")
    op.drop_index(op.f("ix_allocations_enterprise_id"), table_name="allocations")
    op.drop_table("allocations")
    op.drop_table("allocation_plans")
