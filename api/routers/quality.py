"""Data quality: findings per enterprise-period, completeness of key emitters, factor-edition checks, data docs."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/quality", tags=["quality"])
