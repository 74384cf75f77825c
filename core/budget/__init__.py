"""Budgets: what one run may spend, and what the tenant's month has left.

- ``meter``: the run's four ceilings (tokens, tool calls, walltime, cost), checked in
  memory before every call; pure, no database.
- ``ledger``: the tenant's monthly allowance, shared by every run in every process,
  enforced by one conditional ``UPDATE`` per reservation; the usage ledger, one row
  per attempt at a step.
- ``replay``: what earlier allocations of a run recorded, so a resumed run neither
  pays twice for a model response nor repeats a tool effect.
"""
