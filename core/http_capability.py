"""A capability that calls a tenant's SaaS API with that tenant's stored credential.

``resolve`` is synchronous, inside the event loop, so it cannot read the database: the
binding is resolved whenever the capability is in the run's scope, and the tool looks
the tenant's credential up when it is called. A tenant without one gets a
``not_configured`` result the model can explain, not a failed run.

The token is sent only as ``Authorization: Bearer`` to ``base_url`` (redirects are not
followed, so it never reaches another host) and is kept out of logs, results and
exceptions: error messages use the standard status phrase, never the server's text,
and a response that echoes the token has it redacted. The HTTP session forgets its
cookies after every call, because it is shared by every tenant.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from pydantic_ai import RunContext

from core.context import TenantContext
from core.credentials import CredentialStore, check_name
from core.errors import ConfigurationError, NotFound, ToolFailed
from core.logs import log
from core.tools import ToolBinding

REDACTED = "[redacted]"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass(kw_only=True, eq=False)
class HttpApiCapability:
    """A GET endpoint of a SaaS API, called with the run's tenant's bearer token.

    Attributes:
        credentials: Where each tenant's token is stored.
        name: The capability name, e.g. ``crm.lookup``.
        description: What the model is told the tool does.
        base_url: The API root; ``https``, or ``http`` only on loopback.
        credential_name: The tenant credential holding the token, e.g. ``crm_token``.
        path_template: The path and query, with ``{query}`` where the URL-encoded
            argument goes, e.g. ``/contacts?q={query}``.
        cost_microcents: The declared cost of one call.
        timeout_s: Total time allowed for one request, connection included.
        max_response_bytes: Largest (decompressed) answer accepted.
        resource_kind: The kind of resource a call touches, for authorisation.
    """

    credentials: CredentialStore = field(repr=False)
    name: str
    description: str
    base_url: str
    credential_name: str
    path_template: str
    cost_microcents: int = 0
    timeout_s: float = 10.0
    max_response_bytes: int = 1_000_000
    resource_kind: str | None = None
    _session: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_name(self.credential_name)
        base = httpx.URL(self.base_url)
        if base.scheme != "https" and not (base.scheme == "http" and base.host in _LOOPBACK):
            raise ConfigurationError(
                f"{self.name}: base_url must be https (http only on loopback), "
                f"got {self.base_url!r}"
            )
        try:
            self.path_template.format(query="")
            valid = self.path_template.startswith("/") and "{query}" in self.path_template
        except (KeyError, IndexError, ValueError):
            valid = False
        if not valid:
            raise ConfigurationError(
                f"{self.name}: path_template must start with '/' and use only {{query}}, "
                f"got {self.path_template!r}"
            )
        if self.timeout_s <= 0 or self.max_response_bytes <= 0:
            raise ConfigurationError(f"{self.name}: timeout_s and max_response_bytes must be > 0")

    def resolve(self, ctx: TenantContext) -> ToolBinding:
        """Every run in scope gets it; the call reads its own tenant's token only."""
        return ToolBinding(capability=self.name, description=self.description,
                           function=self.lookup, cost_microcents=self.cost_microcents,
                           resource_kind=self.resource_kind)

    async def lookup(self, ctx: RunContext[TenantContext], query: str) -> dict[str, Any]:
        """Look something up in the tenant's account.

        Args:
            query: What to search for.
        """
        try:
            token = await self.credentials.get(ctx.deps, self.credential_name)
        except NotFound:
            return {
                "error": "not_configured",
                "message": f"{self.name} is not set up for this workspace: an operator "
                f"must store its {self.credential_name!r} credential first.",
            }
        return await self._request(query, token)

    def _client(self) -> httpx.AsyncClient:
        if self._session is None or self._session.is_closed:
            self._session = httpx.AsyncClient(
                timeout=self.timeout_s, follow_redirects=False, trust_env=False
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP session; the next call opens a new one."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.aclose()

    async def _request(self, query: str, token: str) -> dict[str, Any]:
        if not token.isprintable() or " " in token:
            raise ToolFailed(
                f"{self.name}: this workspace's {self.credential_name!r} credential is not "
                "a bearer token (it has spaces or control characters); an operator can "
                "replace it"
            )
        path = self.path_template.format(query=quote(query, safe=""))
        url = self.base_url.rstrip("/") + path
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self.timeout_s), self._client().stream(
                "GET",
                url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            ) as response:
                status = response.status_code
                if status >= 300:
                    raise ToolFailed(self._status_message(status))
                body = await self._read(response)
        except (TimeoutError, httpx.TimeoutException):
            raise ToolFailed(
                f"{self.name}: the API did not answer within {self.timeout_s:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ToolFailed(
                f"{self.name}: could not reach the API ({type(exc).__name__})"
            ) from None
        finally:
            if self._session is not None:
                self._session.cookies.clear()
            log.info("http tool call", capability=self.name, host=httpx.URL(self.base_url).host,
                     latency_ms=int((asyncio.get_running_loop().time() - started) * 1000))
        return self._decode(body, token)

    def _status_message(self, status: int) -> str:
        # The standard phrase, never the server's, which could echo the token.
        phrase = f"{status} {httpx.codes.get_reason_phrase(status)}".rstrip()
        if status in (401, 403):
            return (f"{self.name}: the API refused this workspace's {self.credential_name!r} "
                    f"credential ({phrase}); an operator can replace it")
        if status == 429:
            return f"{self.name}: the API is rate limiting this workspace ({phrase})"
        if status < 400:
            return f"{self.name}: the API answered with a redirect ({phrase}); not followed"
        if status < 500:
            return f"{self.name}: the API rejected the request ({phrase})"
        return f"{self.name}: the API failed ({phrase})"

    async def _read(self, response: httpx.Response) -> bytes:
        cap = self.max_response_bytes
        body = bytearray()
        async for chunk in response.aiter_bytes(64 * 1024):
            body += chunk
            if len(body) > cap:
                raise ToolFailed(f"{self.name}: the API's answer is larger than {cap} bytes")
        return bytes(body)

    def _decode(self, body: bytes, token: str) -> dict[str, Any]:
        try:
            text = body.decode("utf-8").replace(token, REDACTED)
            value = json.loads(text)
        except ValueError:
            raise ToolFailed(f"{self.name}: the API's answer is not JSON") from None
        return value if isinstance(value, dict) else {"result": value}
