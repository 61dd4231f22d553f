"""Tollway: an AI gateway.

Read the spine first: ``exchange`` (the record of one call), ``plugin`` (what a plugin
may do at each point of a call), ``chain`` (the one place that runs plugins in order),
``errors`` (every refusal a client can see). Then follow one call: ``gateway.edge`` →
``gateway.call`` (the only driver) → ``chain`` → ``proxy.ai_proxy`` → ``upstream``, and
back through ``gateway.call`` alone. The packages' layers are drawn in pyproject.toml
(``[tool.importlinter]``) and the README's "Layout".
"""

__version__ = "0.1.0"
