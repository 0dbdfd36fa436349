"""Importing the zone registry into the operational store: each added or changed enterprise is audited."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from accounting.registry import Enterprise as RegistryEntry
from accounting.registry import parse_registry
from accounting.review import Actor
from api.store import audit
from api.store.schema import Enterprise

_FIELDS = ("name", "name_en", "category", "sector_code", "sector_name", "zone_code", "city_code", "province_code",
           "county_code", "facilities", "key_emitter_declared")


def _state(entry: RegistryEntry | Enterprise) -> dict[str, Any]:
    values = asdict(entry) if isinstance(entry, RegistryEntry) else {f: getattr(entry, f) for f in _FIELDS}
    values["facilities"] = list(values["facilities"])
    return {"enterprise_id": entry.enterprise_id, **{f: values[f] for f in _FIELDS}}


def import_registry(session: Session, *, content: bytes, source: str, actor: Actor) -> dict[str, int]:
    """Add and update enterprises from a registry file (refused whole when invalid); return the counts.

    Enterprises missing from the file are kept: they may have history, and removing one is a
    decision for an officer, not a side effect of a file.
    """
    entries = parse_registry(content, source=source)
    present = {e.enterprise_id: e for e in session.scalars(select(Enterprise).with_for_update()).all()}
    now = datetime.now(UTC)
    counts = {"added": 0, "changed": 0, "unchanged": 0}
    try:
        for entry in entries:
            after = _state(entry)
            row = present.get(entry.enterprise_id)
            before = _state(row) if row is not None else None
            if before == after:
                counts["unchanged"] += 1
                continue
            if row is None:
                row = Enterprise(enterprise_id=entry.enterprise_id)
                session.add(row)
            for field in _FIELDS:
                setattr(row, field, after[field])
            row.updated_at = now
            counts["changed" if before else "added"] += 1
            audit.append(session, actor=actor, action="registry.change" if before else "registry.add",
                         target=f"enterprise:{entry.enterprise_id}", before=before, after=after,
                         detail={"source": source})
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return counts
