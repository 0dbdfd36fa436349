"""Use cases shared by the routers and the ``carbon`` CLI: one transaction each, no FastAPI."""
