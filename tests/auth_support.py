"""The users of the tests, and the ``Authorization`` headers that sign them in.

Every test database gets the same catalog of users (:func:`seed_users`, called by ``zone_settings``),
each with one API key whose plaintext is derived from the user id, so a test names a user and gets
its headers (:func:`headers_for`, :func:`enterprise`) without a sign-in round trip. The keys are real:
the API checks them against their Argon2id hashes like any other key (hashed here at the lowest
cost, so the suite does not spend 0.1 s a check).
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from api.security import password_hasher
from api.store import db
from api.store.schema import ApiKey, User

SAMPLE_ENTERPRISES = Path(__file__).resolve().parents[1] / "data" / "sample" / "enterprises.csv"


@dataclass(frozen=True, slots=True)
class TestUser:
    user_id: str
    role: str
    enterprise_ids: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()


STAFF = (
    TestUser("officer-li", "officer"),
    TestUser("officer-wang", "officer"),
    TestUser("verifier-zhao", "verifier"),
    TestUser("engineer-chen", "engineer"),
    TestUser("admin-sun", "admin"),
    TestUser("trader-qian", "trader", account_ids=("TR-QIAN",)),
    TestUser("trader-zhou", "trader", account_ids=("TR-ZHOU",)),
)
#: Users bound to several enterprises (``enterprise(a, b)``); single enterprises get one user each.
ENTERPRISE_GROUPS = (
    ("91410102170679896E", "914101022286058318"),  # the gas heating plant's group also runs the CHP plant
)


def enterprise_user_id(enterprise_ids: tuple[str, ...]) -> str:
    return "ent-" + "-".join(sorted(e.lower() for e in enterprise_ids))


@functools.cache
def catalog() -> dict[str, TestUser]:
    """Every test user by id: the staff, one user per sample enterprise, and the groups."""
    with SAMPLE_ENTERPRISES.open(encoding="utf-8") as handle:
        sample = [row["enterprise_id"] for row in csv.DictReader(handle)]
    users = list(STAFF)
    users += [TestUser(enterprise_user_id((e,)), "enterprise", (e,)) for e in sample]
    users += [TestUser(enterprise_user_id(g), "enterprise", tuple(sorted(g))) for g in ENTERPRISE_GROUPS]
    return {u.user_id: u for u in users}


def api_key_of(user_id: str) -> tuple[str, str]:
    """The (key id, secret) of a test user's key: derived from the id, so every database agrees."""
    key_id = hashlib.sha256(f"key:{user_id}".encode()).hexdigest()[:16]
    secret = base64.urlsafe_b64encode(hashlib.sha256(f"secret:{user_id}".encode()).digest()).decode().rstrip("=")
    return key_id, secret


def headers_for(user_id: str) -> dict[str, str]:
    """The headers that sign in as a catalog user."""
    if user_id not in catalog():
        raise KeyError(f"no test user '{user_id}'; add it to tests/auth_support.py")
    key_id, secret = api_key_of(user_id)
    return {"Authorization": f"Bearer ck_{key_id}_{secret}"}


def enterprise(*enterprise_ids: str) -> dict[str, str]:
    """The headers of the enterprise user bound to exactly these enterprises."""
    return headers_for(enterprise_user_id(tuple(enterprise_ids)))


@functools.cache
def _secret_hashes() -> dict[str, str]:
    hasher = password_hasher(time_cost=1, memory_kib=32)
    return {user_id: hasher.hash(api_key_of(user_id)[1]) for user_id in catalog()}


def seed_users(database_url: str) -> None:
    """Migrate the database and add the catalog users and their keys (once: a seeded database is left as is)."""
    engine = db.create_db_engine(database_url)
    try:
        db.migrate(engine)
        with engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(User)).scalar_one():
                return
            now = datetime.now(UTC)
            users = catalog().values()
            conn.execute(insert(User), [
                {"user_id": u.user_id, "role": u.role, "password_hash": None, "enterprise_ids": list(u.enterprise_ids),
                 "account_ids": list(u.account_ids), "created_at": now, "disabled_at": None} for u in users])
            hashes = _secret_hashes()
            conn.execute(insert(ApiKey), [
                {"key_id": api_key_of(u.user_id)[0], "user_id": u.user_id, "name": "tests",
                 "secret_hash": hashes[u.user_id], "created_at": now, "expires_at": now + timedelta(days=30),
                 "revoked_at": None} for u in users])
    finally:
        engine.dispose()


OFFICER = headers_for("officer-li")
OFFICER_2 = headers_for("officer-wang")
VERIFIER = headers_for("verifier-zhao")
ENGINEER = headers_for("engineer-chen")
ADMIN = headers_for("admin-sun")
TRADER = headers_for("trader-qian")
