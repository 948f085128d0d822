"""Virtual-IP address pools and per-identity leases (strongSwan mem_pool semantics)."""

from ikegate.pool.mempool import AcquirePass, Lease, MemPool, PoolError, PoolSet

__all__ = ["AcquirePass", "Lease", "MemPool", "PoolError", "PoolSet"]
