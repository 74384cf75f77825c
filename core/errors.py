"""The one error tree of Tenantry.

Every error that ``core`` raises on purpose is a ``TenantryError``; transports map
these classes to user-facing words in one module each, never by parsing messages::

    TenantryError
    ├── ConfigurationError          the deployment is wrong (settings, keys, model ids)
    ├── InvalidInput                a value given to Tenantry is malformed
    │   └── ContextError            a TenantContext could not be built as asked
    ├── NotFound                    no such tenant, plan, run or checkpoint (in this tenant)
    ├── Conflict                    the thing exists already, or changed under us
    ├── RunError                    a run could not go on
    │   ├── RunRefused              refused before it started (suspended, allowance spent)
    │   ├── BudgetExceeded          a ceiling was reached; recoverable by a resume
    │   ├── ModelFailed             the model provider failed or timed out
    │   ├── CheckpointError         a checkpoint is corrupt or belongs to another tenant
    │   └── ToolUnconfirmed         a tool that must not repeat may have run; a person checks
    └── ToolError                   a tool could not be used
        ├── ToolRefused             not resolved, not licensed, or not permitted
        └── ToolFailed              the tool ran and failed
"""

from __future__ import annotations


class TenantryError(Exception):
    """Base of every error Tenantry raises on purpose."""


class ConfigurationError(TenantryError):
    """The deployment is misconfigured; no request can fix it."""


class InvalidInput(TenantryError):
    """A value handed to Tenantry is malformed."""


class ContextError(InvalidInput):
    """A ``TenantContext`` was asked for with invalid values."""


class NotFound(TenantryError):
    """The named object does not exist, or not within the caller's tenant."""


class Conflict(TenantryError):
    """The object exists already or was changed concurrently."""


class RunError(TenantryError):
    """A run could not go on."""


class RunRefused(RunError):
    """A run was refused before it started.

    Attributes:
        reason: A short machine-readable reason (``tenant_suspended``,
            ``allowance_exhausted``, ...), also written to the audit log.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class BudgetExceeded(RunError):
    """A ceiling was reached. The run is checkpointed and can be resumed.

    Attributes:
        ceiling: Which limit: ``tokens``, ``tool_calls``, ``walltime_ms``,
            ``cost_microcents``, or a ``monthly_`` variant of the first three.
        limit: The limit's value.
        used: What was used, or would have been used, when the check failed.
    """

    def __init__(self, ceiling: str, limit: int, used: int) -> None:
        super().__init__(f"budget ceiling {ceiling} reached: limit {limit}, used {used}")
        self.ceiling = ceiling
        self.limit = limit
        self.used = used


class ModelFailed(RunError):
    """The model provider failed, after its own retries, or did not answer in time."""


class CheckpointError(RunError):
    """A checkpoint cannot be used: corrupt, or owned by another tenant."""


class ToolUnconfirmed(RunError):
    """A non-retryable tool call may have run before the process stopped.

    Its result was never recorded, so nobody knows whether its outside effect
    happened. The run halts for a person instead of making the call again.
    """

    def __init__(self, capability: str) -> None:
        super().__init__(
            f"{capability} may have run before the service stopped, and it must not run "
            "twice; check its effect, then resume the run (the call is not repeated)"
        )
        self.capability = capability


class ToolError(TenantryError):
    """A tool could not be used."""


class ToolRefused(ToolError):
    """A tool call was refused: not resolved for this run, or not permitted.

    Attributes:
        capability: The capability (tool) name the model asked for.
        reason: ``not_resolved``, ``not_licensed``, ``not_in_scope`` or ``forbidden``.
    """

    def __init__(self, capability: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.capability = capability
        self.reason = reason


class ToolFailed(ToolError):
    """The tool ran and failed."""
