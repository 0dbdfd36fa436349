"""Alembic environment: migrates the connection handed over by ``api.store.db.migrate``."""

from alembic import context

from api.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through api.store.db.migrate(engine) or `carbon db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
