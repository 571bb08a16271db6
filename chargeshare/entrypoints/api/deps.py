"""Who is calling: bearer tokens to principals, role checks, and the caller's address for limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.errors import Forbidden, Unauthorized

MAX_ID = 2**31 - 1  # ids are 32-bit in the database: larger ones are "not found", never an overflow
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
ConnectorNo = Annotated[int, Path(ge=1, le=99)]

bearer = HTTPBearer(auto_error=False, description="an access token from POST /auth/login")


def the_app(request: Request) -> App:
    app: App = request.app.state.app
    return app


AppDep = Annotated[App, Depends(the_app)]


def principal(
    app: AppDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if creds is None:
        raise Unauthorized("sign in first: send 'Authorization: Bearer <access token>'")
    return app.auth.verify(creds.credentials)


def _role(*allowed: Role) -> Callable[[Principal], Principal]:
    def check(p: Annotated[Principal, Depends(principal)]) -> Principal:
        if p.role not in allowed:
            raise Forbidden(f"this needs the {' or '.join(r.value for r in allowed)} role")
        return p

    return check


Anyone = Annotated[Principal, Depends(principal)]
Driver = Annotated[Principal, Depends(_role(Role.DRIVER))]
Host = Annotated[Principal, Depends(_role(Role.HOST))]
Admin = Annotated[Principal, Depends(_role(Role.ADMIN))]
DriverOrHost = Annotated[Principal, Depends(_role(Role.DRIVER, Role.HOST))]
FleetOrAdmin = Annotated[Principal, Depends(_role(Role.FLEET, Role.ADMIN))]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
