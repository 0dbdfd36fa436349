"""Users, API keys and sign-in sessions: the use cases behind ``/v1/auth``, ``/v1/users`` and ``carbon users``.

Each function is one transaction. Changes to users and keys are written to the audit log in the same
transaction (never a password, a key or a token: the audit detail names the user, the role and the key id).
Signing in with a password is throttled per login name: after ``login_max_failures`` failures within
``login_window_minutes`` that name is refused (even with the right password) until the window has passed.

A change that ends or alters what a credential grants (sign-out, key revocation, a user disabled, re-bound
or given a new password) marks its user in the session (:func:`mark_credentials_changed`); when that
transaction commits, the API process's credential cache (``api.security.CredentialCache``, wired by
:func:`forget_on_commit`) forgets the user, so the change holds for the very next request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session, SessionTransaction

from accounting.review import USER_ROLES, Actor
from api.security import (
    CredentialCache,
    NewApiKey,
    VerifiedKeys,
    is_session_token,
    new_api_key,
    new_session_token,
    parse_api_key,
    password_hasher,
    same_digest,
    token_digest,
    verify_hash,
)
from api.store import audit
from api.store.schema import ApiKey, AuthSession, LoginFailure, User
from pipelines.settings import Settings

USER_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
ROLE_BINDINGS = {"enterprise": "enterprise_ids", "trader": "account_ids"}


class UserError(Exception):
    """A refused user or key change; ``code`` is machine-readable, ``status`` the HTTP answer."""

    def __init__(self, message: str, *, code: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class InvalidCredentialsError(Exception):
    """Sign-in refused: unknown name, wrong password, disabled user (one message for all: nothing leaks)."""


class LoginThrottledError(Exception):
    """Too many failed sign-ins for this login name; ``retry_after`` seconds until the window frees one."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins for this name; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented: a bearer token or API key, or a session cookie (with its CSRF header)."""

    token: str
    via_cookie: bool = False
    csrf_token: str | None = None


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The user behind a request, and how they signed in (``key``, ``bearer`` or ``cookie``)."""

    actor: Actor
    method: str
    session_digest: str | None = None
    csrf_digest: str | None = None
    #: When the key or session ends (a cached sign-in is refused after it).
    expires_at: datetime | None = None


def hasher_for(settings: Settings) -> PasswordHasher:
    return password_hasher(time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib)


def now_utc() -> datetime:
    return datetime.now(UTC)


#: ``Session.info`` key: the users whose credentials the session's transaction changes.
CREDENTIALS_CHANGED = "carbon_credentials_changed"


def mark_credentials_changed(session: Session, user_id: str) -> None:
    """Record that this transaction changes what ``user_id``'s keys and sessions grant (see the module docstring)."""
    session.info.setdefault(CREDENTIALS_CHANGED, set()).add(user_id)


def forget_on_commit(cache: CredentialCache[Authenticated]) -> Callable[[], None]:
    """Make every commit in this process that changes credentials forget their users in ``cache``; the undo.

    Listens on every ``Session`` of the process (the API's, and a service called from a test or a script in
    the same process). The marks are dropped when the outermost transaction ends, committed or not.
    """

    def forget(session: Session) -> None:
        for user_id in session.info.get(CREDENTIALS_CHANGED, ()):
            cache.forget_user(user_id)

    def drop_marks(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.pop(CREDENTIALS_CHANGED, None)

    event.listen(Session, "after_commit", forget)
    event.listen(Session, "after_transaction_end", drop_marks)

    def undo() -> None:
        event.remove(Session, "after_commit", forget)
        event.remove(Session, "after_transaction_end", drop_marks)

    return undo


def actor_of(user: User) -> Actor:
    return Actor(actor_id=user.user_id, role=user.role, enterprise_ids=frozenset(user.enterprise_ids),
                 account_ids=frozenset(user.account_ids))


def describe(user: User) -> dict[str, Any]:
    return {"user_id": user.user_id, "role": user.role, "enterprise_ids": sorted(user.enterprise_ids),
            "account_ids": sorted(user.account_ids), "has_password": user.password_hash is not None,
            "created_at": user.created_at, "disabled": user.disabled_at is not None}


def describe_key(key: ApiKey) -> dict[str, Any]:
    return {"key_id": key.key_id, "user_id": key.user_id, "name": key.name, "created_at": key.created_at,
            "expires_at": key.expires_at,
            "revoked_at": key.revoked_at}


# --- users -------------------------------------------------------------------------------------------


def _check_user(*, user_id: str, role: str, enterprise_ids: Iterable[str], account_ids: Iterable[str]
                ) -> tuple[list[str], list[str]]:
    if not USER_ID_PATTERN.fullmatch(user_id):
        raise UserError(f"user id '{user_id}': 2–64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter"
                        " or digit", code="invalid_user_id")
    if role not in USER_ROLES:
        raise UserError(f"unknown role '{role}'; one of {', '.join(USER_ROLES)}", code="unknown_role")
    enterprises = sorted({e.strip() for e in enterprise_ids if e.strip()})
    accounts = sorted({a.strip() for a in account_ids if a.strip()})
    if role == "enterprise" and not enterprises:
        raise UserError("an enterprise user is bound to at least one enterprise id", code="binding_required")
    if role == "trader" and not accounts:
        raise UserError("a trader is bound to at least one trading account id", code="binding_required")
    if enterprises and role != "enterprise":
        raise UserError(f"only enterprise users are bound to enterprises, not {role}", code="binding_not_allowed")
    if accounts and role not in ("trader", "enterprise"):
        raise UserError(f"only traders and enterprises are bound to trading accounts, not {role}",
                        code="binding_not_allowed")
    return enterprises, accounts


def check_password(settings: Settings, password: str) -> None:
    if len(password) < settings.password_min_length:
        raise UserError(f"a password has at least {settings.password_min_length} characters", code="weak_password")
    if len(password) > 1024:
        raise UserError("a password has at most 1024 characters", code="weak_password")


def create_user(session: Session, settings: Settings, *, by: Actor, user_id: str, role: str,
                password: str | None = None, enterprise_ids: Iterable[str] = (),
                account_ids: Iterable[str] = ()) -> dict[str, Any]:
    """A new user; ``password=None`` makes a machine user that signs in with API keys only."""
    enterprises, accounts = _check_user(user_id=user_id, role=role, enterprise_ids=enterprise_ids,
                                        account_ids=account_ids)
    if password is not None:
        check_password(settings, password)
    if session.get(User, user_id) is not None:
        raise UserError(f"user '{user_id}' exists", code="user_exists", status=409)
    user = User(user_id=user_id, role=role, enterprise_ids=enterprises, account_ids=accounts, created_at=now_utc(),
                password_hash=hasher_for(settings).hash(password) if password is not None else None)
    session.add(user)
    session.flush()
    audit.append(session, actor=by, action="user_created", target=f"user/{user_id}",
                 detail={"role": role, "enterprise_ids": enterprises, "account_ids": accounts})
    session.commit()
    return describe(user)


def _user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise UserError(f"no user '{user_id}'", code="user_not_found", status=404)
    return user


def get_user(session: Session, user_id: str) -> dict[str, Any]:
    return describe(_user(session, user_id))


def list_users(session: Session, *, limit: int = 1000, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    total = session.execute(select(func.count()).select_from(User)).scalar_one()
    rows = session.execute(select(User).order_by(User.user_id).limit(limit).offset(offset)).scalars()
    return total, [describe(u) for u in rows]


def update_user(session: Session, settings: Settings, *, by: Actor, user_id: str, password: str | None = None,
                disabled: bool | None = None, enterprise_ids: Iterable[str] | None = None,
                account_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """Change a user's password, bindings or disabled flag; disabling ends every session and key use at once."""
    user = session.execute(select(User).where(User.user_id == user_id).with_for_update()).scalar_one_or_none()
    if user is None:
        raise UserError(f"no user '{user_id}'", code="user_not_found", status=404)
    changed: dict[str, Any] = {}
    if enterprise_ids is not None or account_ids is not None:
        enterprises, accounts = _check_user(
            user_id=user_id, role=user.role,
            enterprise_ids=user.enterprise_ids if enterprise_ids is None else enterprise_ids,
            account_ids=user.account_ids if account_ids is None else account_ids)
        user.enterprise_ids, user.account_ids = enterprises, accounts
        changed.update(enterprise_ids=enterprises, account_ids=accounts)
    if password is not None:
        check_password(settings, password)
        user.password_hash = hasher_for(settings).hash(password)
        changed["password_changed"] = True
        _end_sessions(session, user_id)
    if disabled is not None and disabled != (user.disabled_at is not None):
        user.disabled_at = now_utc() if disabled else None
        changed["disabled"] = disabled
        if disabled:
            _end_sessions(session, user_id)
    if changed:
        audit.append(session, actor=by, action="user_changed", target=f"user/{user_id}", detail=changed)
        mark_credentials_changed(session, user_id)
    session.commit()
    return describe(user)


def _end_sessions(session: Session, user_id: str) -> None:
    for row in session.execute(select(AuthSession).where(AuthSession.user_id == user_id,
                                                         AuthSession.revoked_at.is_(None))).scalars():
        row.revoked_at = now_utc()


# --- API keys ----------------------------------------------------------------------------------------


def issue_key(session: Session, settings: Settings, *, by: Actor, user_id: str, name: str,
              days: int | None = None) -> tuple[dict[str, Any], str]:
    """A new API key for ``user_id``: its description and the plaintext, which is never shown again."""
    user = _user(session, user_id)
    if user.disabled_at is not None:
        raise UserError(f"user '{user_id}' is disabled", code="user_disabled", status=409)
    lifetime = settings.api_key_days if days is None else days
    if not 1 <= lifetime <= settings.api_key_days:
        raise UserError(f"an API key lives 1 to {settings.api_key_days} days, not {lifetime}",
                        code="invalid_expiry")
    name = name.strip()
    if not name or len(name) > 255:
        raise UserError("an API key needs a name of 1 to 255 characters (what it is for)", code="invalid_name")
    issued = new_api_key()
    created = now_utc()
    key = ApiKey(key_id=issued.key_id, user_id=user_id, name=name, created_at=created,
                 expires_at=created + timedelta(days=lifetime), secret_hash=hasher_for(settings).hash(issued.secret))
    session.add(key)
    session.flush()
    audit.append(session, actor=by, action="api_key_issued", target=f"user/{user_id}",
                 detail={"key_id": key.key_id, "name": name, "expires_at": key.expires_at.isoformat()})
    session.commit()
    return describe_key(key), issued.plaintext


def list_keys(session: Session, *, user_id: str) -> list[dict[str, Any]]:
    rows = session.execute(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at)).scalars()
    return [describe_key(k) for k in rows]


def revoke_key(session: Session, *, by: Actor, key_id: str, user_id: str | None = None) -> dict[str, Any]:
    """Revoke a key at once; ``user_id`` confines it to that user's keys (another's answers as not found)."""
    key = session.execute(select(ApiKey).where(ApiKey.key_id == key_id).with_for_update()).scalar_one_or_none()
    if key is None or (user_id is not None and key.user_id != user_id):
        raise UserError(f"no API key '{key_id}'", code="key_not_found", status=404)
    if key.revoked_at is None:
        key.revoked_at = now_utc()
        audit.append(session, actor=by, action="api_key_revoked", target=f"user/{key.user_id}",
                     detail={"key_id": key_id})
        mark_credentials_changed(session, key.user_id)
    session.commit()
    return describe_key(key)


# --- signing in --------------------------------------------------------------------------------------


def sign_in(session: Session, settings: Settings, *, user_id: str, password: str, kind: str
            ) -> tuple[dict[str, Any], str, str | None]:
    """Check a password and open a session of ``kind`` (bearer or cookie): (user, token, csrf token or None).

    Throttled: the failures of this login name within the window are counted first.
    """
    now = now_utc()
    window_start = now - timedelta(minutes=settings.login_window_minutes)
    failures = session.execute(select(LoginFailure.at).where(LoginFailure.user_id == user_id,
                                                             LoginFailure.at >= window_start)
                               .order_by(LoginFailure.at)).scalars().all()
    if len(failures) >= settings.login_max_failures:
        frees_at = failures[-settings.login_max_failures] + timedelta(minutes=settings.login_window_minutes)
        raise LoginThrottledError(max(1, int((frees_at - now).total_seconds()) + 1))
    user = session.get(User, user_id) if USER_ID_PATTERN.fullmatch(user_id) else None
    hasher = hasher_for(settings)
    valid = verify_hash(hasher, user.password_hash if user else None, password)
    if not valid or user is None or user.disabled_at is not None:
        session.add(LoginFailure(user_id=user_id[:64], at=now))
        session.commit()
        raise InvalidCredentialsError("wrong user name or password")
    session.execute(delete(LoginFailure).where(LoginFailure.user_id == user_id))
    if user.password_hash and hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    token = new_session_token()
    csrf = new_session_token() if kind == "cookie" else None
    lifetime = (timedelta(minutes=settings.access_token_minutes) if kind == "bearer"
                else timedelta(hours=settings.session_hours))
    session.add(AuthSession(token_sha256=token_digest(token), user_id=user_id, kind=kind, created_at=now,
                            csrf_sha256=token_digest(csrf) if csrf else None, expires_at=now + lifetime))
    session.commit()
    return {**describe(user), "expires_in": int(lifetime.total_seconds())}, token, csrf


def sign_out(session: Session, *, session_digest: str) -> None:
    row = session.get(AuthSession, session_digest)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now_utc()
        mark_credentials_changed(session, row.user_id)
    session.commit()


def authenticate(session: Session, settings: Settings, credentials: Credentials, *,
                 verified_keys: VerifiedKeys) -> Authenticated | None:
    """The user behind the credentials, or None when they are unknown, expired, revoked or disabled."""
    now = now_utc()
    if is_session_token(credentials.token):
        row = session.get(AuthSession, token_digest(credentials.token))
        wanted = "cookie" if credentials.via_cookie else "bearer"
        if row is None or row.kind != wanted or row.revoked_at is not None or row.expires_at <= now:
            return None
        user = session.get(User, row.user_id)
        if user is None or user.disabled_at is not None:
            return None
        return Authenticated(actor=actor_of(user), method=row.kind, session_digest=row.token_sha256,
                             csrf_digest=row.csrf_sha256, expires_at=row.expires_at)
    parsed = parse_api_key(credentials.token)
    if parsed is None or credentials.via_cookie:
        return None
    return _authenticate_key(session, settings, parsed, credentials.token, now=now, verified_keys=verified_keys)


def _authenticate_key(session: Session, settings: Settings, parsed: NewApiKey, plaintext: str, *, now: datetime,
                      verified_keys: VerifiedKeys) -> Authenticated | None:
    key = session.get(ApiKey, parsed.key_id)
    if key is None or key.revoked_at is not None or key.expires_at <= now:
        return None
    if verified_keys.key_id(plaintext) != key.key_id:
        if not verify_hash(hasher_for(settings), key.secret_hash, parsed.secret):
            return None
        verified_keys.remember(plaintext, key.key_id)
    user = session.get(User, key.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return Authenticated(actor=actor_of(user), method="key", expires_at=key.expires_at)


def csrf_matches(authenticated: Authenticated, presented: str | None) -> bool:
    return presented is not None and same_digest(presented, authenticated.csrf_digest)
