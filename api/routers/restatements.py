"""Substitution of missing months and restatement diffs."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/restatements", tags=["restatements"])
