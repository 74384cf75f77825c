"""Scheduled digests: a tenant's prompts that run on a cron schedule and post their answer.

``tables`` holds the table, ``records`` its transactions (every one filtered by
tenant), ``destinations`` where a digest posts, and ``schedule`` the cron rules
(validation in the tenant's zone, due firings, the deterministic run id of a firing).
Firing a digest needs the transports, so it lives in ``bots.digests``; the clock that
decides when lives in ``bots.clock``.
"""
