"""cluster-key-rate-limit (default phase, priority 20): request limits shared by every
worker and replica through ``storage.state``.

The same fields and answers as key-rate-limit (Higress's cluster fields: ``rule_name``,
required, names the counters, so every rule and replica using one name shares them;
``global_threshold``; ``rule_items``, first match wins). With ``storage.state:
redis://…`` each decision is one atomic script run, so N replicas together admit
exactly the limit. If the store cannot answer, the entry's ``failure_mode`` decides:
``open`` (the default) lets requests through, ``closed`` answers 503.
"""

from __future__ import annotations

from pydantic import Field

from tollway.plugins.limits.config import LimitRulesConfig, QueryLimitKey, QueryThreshold
from tollway.plugins.limits.key_rate_limit import RequestRateLimit


class ClusterKeyRateLimitConfig(LimitRulesConfig[QueryThreshold, QueryLimitKey]):
    rule_name: str = Field(min_length=1)


class ClusterKeyRateLimit(RequestRateLimit[ClusterKeyRateLimitConfig]):
    name = "cluster-key-rate-limit"
    priority = 20
    config_model = ClusterKeyRateLimitConfig
    shared = True


__all__ = ["ClusterKeyRateLimit", "ClusterKeyRateLimitConfig"]
