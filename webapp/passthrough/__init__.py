"""The live passthrough (middleware) between the portal and the utility's backends, for what the read model
cannot answer: on-demand meter reads (head-end), today's intervals newer than the last publish (MDM) and the
account balance (billing). See docs/passthrough.md.

- `resilience`: deadline, full-jitter backoff, circuit breaker, bulkhead (pure, thread-safe).
- `gateway`: `BackendGateway.call`, the only way out to a backend (allow-list of configured URLs, logging).
- `store`: SQLite state shared by gunicorn workers (reads in flight, rate limit, last known balances).
- `inbox`: atomic drop of CIM files into `AMI_DATA_DIR/inbox/` for the pipelines.
"""

from webapp.passthrough.gateway import BackendGateway, PassthroughError, PassthroughSettings
from webapp.passthrough.store import LiveStore

__all__ = ["BackendGateway", "LiveStore", "PassthroughError", "PassthroughSettings"]
