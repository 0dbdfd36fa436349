"""``/v1/auth``: sign in (OAuth2 password flow for API clients, a cookie session for the browser pages),
sign out, who am I, and the signed-in user's own API keys.

An access token (``Authorization: Bearer cs_...``) lives ``access_token_minutes``; a browser session
lives ``session_hours`` in an HTTP-only, ``SameSite=Strict`` cookie (``Secure`` unless the settings say
otherwise), and every change it makes carries the session's CSRF token in ``X-CSRF-Token`` (the token is
returned at sign-in and also set in a readable cookie, for the page scripts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Response, status
from pydantic import BaseModel, Field

from api.access import CSRF_COOKIE, SESSION_COOKIE, ActorDep, SignInDep
from api.deps import SessionDep, SettingsDep
from api.schemas import Problem
from api.services import users as service

router = APIRouter(prefix="/v1/auth", tags=["auth"])

UserName = Annotated[str, Form(min_length=1, max_length=64, description="the login name")]
Password = Annotated[str, Form(min_length=1, max_length=1024)]
SIGN_IN_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "wrong user name or password, or a disabled user"},
    429: {"model": Problem, "description": "too many failed sign-ins for this name (Retry-After)"}}


class UserView(BaseModel):
    user_id: str
    role: str
    enterprise_ids: list[str]
    account_ids: list[str]
    has_password: bool
    created_at: datetime
    disabled: bool


class TokenResponse(BaseModel):
    """RFC 6749 §5.1: the access token and how long it lives."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int


class BrowserSession(BaseModel):
    """A cookie session: send ``csrf_token`` as ``X-CSRF-Token`` with every change."""

    csrf_token: str
    expires_in: int
    user: UserView


class Me(UserView):
    signed_in_with: Literal["bearer", "cookie", "key"]


class KeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=255, description="what the key is for (e.g. 'monthly upload job')")
    days: int | None = Field(default=None, ge=1, description="lifetime in days (default and maximum: settings)")


class KeyView(BaseModel):
    key_id: str
    user_id: str
    name: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class IssuedKey(KeyView):
    """The new key: ``api_key`` is shown this once and never again."""

    api_key: str


class KeyList(BaseModel):
    items: list[KeyView]


@router.post("/token", response_model=TokenResponse, responses=SIGN_IN_ERRORS)
def token(session: SessionDep, settings: SettingsDep, username: UserName, password: Password,
          grant_type: Annotated[Literal["password"], Form()] = "password") -> TokenResponse:
    """OAuth2 password flow (form fields ``username``, ``password``): a bearer access token."""
    user, access_token, _ = service.sign_in(session, settings, user_id=username, password=password, kind="bearer")
    return TokenResponse(access_token=access_token, expires_in=user["expires_in"])


@router.post("/session", response_model=BrowserSession, responses=SIGN_IN_ERRORS)
def browser_session(response: Response, session: SessionDep, settings: SettingsDep, username: UserName,
                    password: Password) -> BrowserSession:
    """Sign in for the browser pages: sets the session cookie (HTTP-only) and the CSRF cookie."""
    user, cookie, csrf = service.sign_in(session, settings, user_id=username, password=password, kind="cookie")
    assert csrf is not None  # a cookie session always has one  # noqa: S101
    lifetime = user.pop("expires_in")
    for name, value, http_only in ((SESSION_COOKIE, cookie, True), (CSRF_COOKIE, csrf, False)):
        response.set_cookie(name, value, max_age=lifetime, path="/", secure=settings.session_cookie_secure,
                            httponly=http_only, samesite="strict")
    return BrowserSession(csrf_token=csrf, expires_in=lifetime, user=UserView.model_validate(user))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(response: Response, session: SessionDep, signed_in: SignInDep) -> Response:
    """End this session (an access token or the browser's); an API key is revoked through its own route."""
    if signed_in.session_digest is not None:
        service.sign_out(session, session_digest=signed_in.session_digest)
    response.status_code = status.HTTP_204_NO_CONTENT
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/")
    return response


@router.get("/me", response_model=Me)
def me(session: SessionDep, signed_in: SignInDep) -> Me:
    """The signed-in user: role, bound enterprises and trading accounts, and how they signed in."""
    user = service.get_user(session, signed_in.actor.actor_id)
    return Me.model_validate({**user, "signed_in_with": signed_in.method})


@router.get("/keys", response_model=KeyList)
def own_keys(session: SessionDep, actor: ActorDep) -> KeyList:
    """The signed-in user's API keys (never their secrets)."""
    return KeyList(items=[KeyView.model_validate(k) for k in service.list_keys(session, user_id=actor.actor_id)])


@router.post("/keys", response_model=IssuedKey, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Problem}})
def issue_own_key(body: KeyRequest, session: SessionDep, settings: SettingsDep, actor: ActorDep) -> IssuedKey:
    """A new API key for the signed-in user; the key is in this answer only."""
    key, plaintext = service.issue_key(session, settings, by=actor, user_id=actor.actor_id, name=body.name,
                                       days=body.days)
    return IssuedKey.model_validate({**key, "api_key": plaintext})


@router.delete("/keys/{key_id}", response_model=KeyView, responses={404: {"model": Problem}})
def revoke_own_key(key_id: str, session: SessionDep, actor: ActorDep) -> KeyView:
    """Revoke one of the signed-in user's keys at once (another user's key is not found)."""
    return KeyView.model_validate(service.revoke_key(session, by=actor, key_id=key_id, user_id=actor.actor_id))
