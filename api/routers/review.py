"""Review workflow: period states, the review queue, review actions and comments, evidence, audit log."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/review", tags=["review"])
