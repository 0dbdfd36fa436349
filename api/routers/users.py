"""``/v1/users``: user administration for the admin role (the same use cases as ``carbon users``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field

from api.deps import ActorDep, LimitQuery, OffsetQuery, SessionDep, SettingsDep
from api.routers.auth import IssuedKey, KeyList, KeyRequest, KeyView, UserView
from api.schemas import Problem
from api.services import users as service

router = APIRouter(prefix="/v1/users", tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=64)]
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": Problem}}


class NewUser(BaseModel):
    user_id: str = Field(min_length=2, max_length=64, description="login name: a-z, 0-9, '.', '_', '-'")
    role: str = Field(description="enterprise, verifier, officer, trader, engineer or admin")
    password: str | None = Field(default=None, max_length=1024,
                                 description="omit for a machine user that signs in with API keys only")
    enterprise_ids: list[str] = Field(default=[], max_length=1000, description="for the enterprise role")
    account_ids: list[str] = Field(default=[], max_length=1000, description="trading accounts (trader role)")


class UserChange(BaseModel):
    password: str | None = Field(default=None, max_length=1024)
    disabled: bool | None = None
    enterprise_ids: list[str] | None = Field(default=None, max_length=1000)
    account_ids: list[str] | None = Field(default=None, max_length=1000)


class UserPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[UserView]


@router.get("", response_model=UserPage)
def list_users(session: SessionDep, limit: LimitQuery = 100, offset: OffsetQuery = 0) -> UserPage:
    total, items = service.list_users(session, limit=limit, offset=offset)
    return UserPage(total=total, limit=limit, offset=offset, items=[UserView.model_validate(u) for u in items])


@router.post("", response_model=UserView, status_code=status.HTTP_201_CREATED,
             responses={409: {"model": Problem}})
def create_user(body: NewUser, session: SessionDep, settings: SettingsDep, actor: ActorDep) -> UserView:
    return UserView.model_validate(service.create_user(
        session, settings, by=actor, user_id=body.user_id, role=body.role, password=body.password,
        enterprise_ids=body.enterprise_ids, account_ids=body.account_ids))


@router.get("/{user_id}", response_model=UserView, responses=NOT_FOUND)
def get_user(user_id: UserId, session: SessionDep) -> UserView:
    return UserView.model_validate(service.get_user(session, user_id))


@router.patch("/{user_id}", response_model=UserView, responses=NOT_FOUND)
def change_user(user_id: UserId, body: UserChange, session: SessionDep, settings: SettingsDep,
                actor: ActorDep) -> UserView:
    """Set a password, change bindings, or disable (which ends the user's sessions and keys at once)."""
    return UserView.model_validate(service.update_user(
        session, settings, by=actor, user_id=user_id, password=body.password, disabled=body.disabled,
        enterprise_ids=body.enterprise_ids, account_ids=body.account_ids))


@router.get("/{user_id}/keys", response_model=KeyList, responses=NOT_FOUND)
def list_keys(user_id: UserId, session: SessionDep) -> KeyList:
    service.get_user(session, user_id)
    return KeyList(items=[KeyView.model_validate(k) for k in service.list_keys(session, user_id=user_id)])


@router.post("/{user_id}/keys", response_model=IssuedKey, status_code=status.HTTP_201_CREATED,
             responses={**NOT_FOUND, 409: {"model": Problem}})
def issue_key(user_id: UserId, body: KeyRequest, session: SessionDep, settings: SettingsDep,
              actor: ActorDep) -> IssuedKey:
    """A new API key for a (machine) user; the key is in this answer only."""
    key, plaintext = service.issue_key(session, settings, by=actor, user_id=user_id, name=body.name, days=body.days)
    return IssuedKey.model_validate({**key, "api_key": plaintext})


@router.delete("/{user_id}/keys/{key_id}", response_model=KeyView, responses=NOT_FOUND)
def revoke_key(user_id: UserId, key_id: str, session: SessionDep, actor: ActorDep) -> KeyView:
    return KeyView.model_validate(service.revoke_key(session, by=actor, key_id=key_id, user_id=user_id))
