"""Airflow auth manager of the Data Workspace Operator: people come through the access layer.

The Airflow UI of a Project is served only through its authenticating proxy (oauth2-proxy),
which removes any X-Forwarded-Email header a client sends and sets it to the verified e-mail of
the person it signed in. On the API server (`airflow api-server --apps core`, which a
NetworkPolicy lets only the proxy reach) this auth manager trusts that header and nothing else:
it drops the client's own credentials (an Authorization header, cookies) and, when the roles
file gives the e-mail a role, lets the request through with a short-lived token for that person.
Roles and permissions are those of Airflow's SimpleAuthManager (viewer, user, op, admin).
This server serves no Execution API (`--apps core`): tasks report to another one.

There are no users and no passwords: no login form, no token endpoint, no generated password
file. The roles file (JSON, the SHA-256 of each lower-case e-mail to role, so that it holds no
address) is written by the operator from the Workspace's members and the Project's access list,
and read at every request, so a change applies as soon as the kubelet updates the mounted file.
Its path is in DATAWORKSPACE_AIRFLOW_ROLES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse
from starlette.middleware.base import BaseHTTPMiddleware

from airflow.api_fastapi.app import API_ROOT_PATH, AUTH_MANAGER_FASTAPI_APP_PREFIX, get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.api_fastapi.core_api.security import is_safe_url

log = logging.getLogger(__name__)

ROLES = {"viewer", "user", "op", "admin"}
# Where the proxy ends its session.
SIGN_OUT = "/oauth2/sign_out"


def person(request: Request) -> SimpleAuthManagerUser | None:
    """The person the proxy vouches for, when the roles file gives them a role."""
    # Lower-cased as the operator does: ASCII letters only (bytes.lower).
    email = request.headers.get("x-forwarded-email", "").strip().encode("utf-8").lower().decode("utf-8")
    if not email:
        return None
    try:
        with open(os.environ["DATAWORKSPACE_AIRFLOW_ROLES"], encoding="utf-8") as file:
            roles = {str(k).lower(): str(v).lower() for k, v in json.load(file).items()}
    except (KeyError, OSError, ValueError, AttributeError) as error:
        # Fail closed: nobody gets in without a readable list.
        log.error("refusing %s: cannot read the roles file: %s", email, error)
        return None
    role = roles.get(hashlib.sha256(email.encode("utf-8")).hexdigest())
    if role not in ROLES:
        log.warning("refusing %s: not on the project's access list", email)
        return None
    return SimpleAuthManagerUser(username=email, role=role)


class ProxyHeader(BaseHTTPMiddleware):
    """Makes the proxy's header the only credential of every UI and API request."""

    async def dispatch(self, request: Request, call_next):
        headers = [(k, v) for k, v in request.scope["headers"] if k not in (b"authorization", b"cookie")]
        user = person(request)
        if user is not None:
            token = get_auth_manager().generate_jwt(user, expiration_time_in_seconds=60)
            headers.append((b"authorization", f"Bearer {token}".encode()))
        request.scope["headers"] = headers
        return await call_next(request)


class ProxyAuthManager(SimpleAuthManager):
    """SimpleAuthManager's roles and permissions; identities only from the access layer."""

    def init(self) -> None:
        # Not SimpleAuthManager.init: it would create `[core] simple_auth_manager_users`
        # (admin:admin by default) with generated passwords, written to a file and the log.
        BaseAuthManager.init(self)

    def get_fastapi_middlewares(self):
        return [(ProxyHeader, {})]

    def get_url_login(self, **kwargs) -> str:
        # Where the UI goes (through /api/v2/auth/login?next=...) when the API answers 401.
        return f"{AUTH_MANAGER_FASTAPI_APP_PREFIX}/login"

    def get_url_logout(self) -> str | None:
        return SIGN_OUT

    def get_fastapi_app(self) -> FastAPI:
        """Mounted at /auth instead of SimpleAuthManager's password login."""
        app = FastAPI(title="Data Workspace sign-in")

        @app.get("/login")
        def login(request: Request, next: str | None = None):
            # A page, not a redirect: someone without a role must not loop between pages.
            if person(request) is None:
                return PlainTextResponse("You have no access to this Airflow.", status_code=403)
            target = next if next and is_safe_url(next, request=request) else API_ROOT_PATH
            return RedirectResponse(target, status_code=303)

        return app
