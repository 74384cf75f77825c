"""Offline stand-ins for the services Tenantry talks to, for the demo, benchmarks and tests.

Each speaks the real service's protocol on loopback, so the real SDKs talk to it:

- ``standins.slack``: Slack's Web API (``api``), and a driver that plays Slack against
  a running ``tenantry serve`` with really signed requests (``driver``);
- ``standins.teams``: Microsoft's side of Teams: a token issuer with the channel's
  signing keys and a client-credentials endpoint (``issuer``), the Bot Connector
  (``connector``), and inbound activities POSTed to a bot with channel tokens
  (``activities``, ``driver``);
- ``standins.anthropic``: the Anthropic Messages API (usage, errors, retries);
- ``standins.pinecone``: Pinecone's data plane (namespaces, upsert, query, delete).

No production module imports this package; only the demo and the development
commands do (a test checks it), so a deployment never runs a stand-in by accident.
"""
