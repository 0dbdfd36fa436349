"""OLTP storage and read-only snapshot access; no FastAPI here (the CLI uses it too)."""
