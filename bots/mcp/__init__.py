"""The MCP server: a tenant's people reach its tools from their MCP clients.

The official ``mcp`` SDK serves the Streamable HTTP transport as an ASGI (Starlette)
application, while ``tenantry serve`` is an aiohttp server. No well-kept bridge from
ASGI into aiohttp exists (the one adapter on PyPI is a small single-maintainer project
whose streaming of server-sent events we would have to vouch for ourselves), so the
SDK's application runs under uvicorn, the server the SDK's own examples use, on its own
port (``TENANTRY_MCP_PORT``), started and stopped by the web app's lifespan
(``bots.mcp.serving``). Nothing of the MCP protocol is written here: the SDK parses,
answers and streams; this package only turns a bearer token into a ``TenantContext``
(``bots.mcp.auth``) and a ``tools/call`` into a run (``bots.mcp.server``).
"""
