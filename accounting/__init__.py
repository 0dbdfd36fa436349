"""Pure domain logic of the carbon accounting service: units, factors, templates, emissions rules.

Nothing here imports Dagster, FastAPI, DuckDB, SQLAlchemy or Great Expectations.
"""
