"""Sign up as a driver or host, log in for an access token, and see who you are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import normalise_email
from chargeshare.domain.errors import InvalidRequest
from chargeshare.entrypoints.api.deps import Anyone, AppDep, client_address
from chargeshare.entrypoints.api.schemas import AccountOut, DriverSignUp, HostSignUp, LoginIn, TokenOut
from chargeshare.entrypoints.api.strict_json import StrictJsonRoute
from chargeshare.services.auth import AccessToken


def token_out(t: AccessToken) -> TokenOut:
    p = t.principal
    return TokenOut(
        access_token=t.token,
        expires_at=t.expires_at,
        role=p.role.value,
        account_id=p.account_id,
        driver_id=p.driver_id,
        host_id=p.host_id,
    )


router = APIRouter(prefix="/auth", tags=["auth"], route_class=StrictJsonRoute)


def signup_allowed(app: App, address: str) -> None:
    if app.config.limits.signup_per_address is not None:
        app.limiter.check("sign-up", f"address:{address}", app.config.limits.signup_per_address)


@router.post("/register/driver", status_code=201)
def register_driver(
    app: AppDep, body: DriverSignUp, address: Annotated[str, Depends(client_address)]
) -> TokenOut:
    """Limited per address (Retry-After on 429): each sign-up costs a password hash."""
    signup_allowed(app, address)
    account = app.auth.register_driver(body.email, body.password, body.name, body.id_tag)
    return token_out(app.auth.issue(account))


@router.post("/register/host", status_code=201)
def register_host(
    app: AppDep, body: HostSignUp, address: Annotated[str, Depends(client_address)]
) -> TokenOut:
    """Limited per address (Retry-After on 429), as drivers' sign-ups are, in the same count."""
    signup_allowed(app, address)
    account = app.auth.register_host(body.email, body.password, body.name)
    return token_out(app.auth.issue(account))


@router.post("/login")
def login(app: AppDep, body: LoginIn, address: Annotated[str, Depends(client_address)]) -> TokenOut:
    """Limited per address and per account (Retry-After on 429), so passwords cannot be guessed
    at speed. Wrong email and wrong password get the same answer. The password check waits for
    a turn; with too many waiting already, 503 with Retry-After."""
    app.limiter.check("login", f"address:{address}", app.config.limits.login_per_address)
    try:
        key = normalise_email(body.email)
    except InvalidRequest:
        key = body.email.strip().lower()
    app.limiter.check("login", f"account:{key}", app.config.limits.login_per_account)
    return token_out(app.auth.login(body.email, body.password))


@router.get("/me")
def me(app: AppDep, who: Anyone) -> AccountOut:
    v = app.queries.accounts.me(who)
    return AccountOut(
        account_id=v.account_id,
        email=v.email,
        role=v.role,
        driver_id=v.driver_id,
        host_id=v.host_id,
        id_tag=v.id_tag,
        kyc_status=v.kyc_status,
    )
