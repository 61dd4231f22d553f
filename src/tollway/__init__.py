"""Tollway: an AI gateway.

Read in this order: ``exchange`` (the record of one call), ``plugin`` (what a plugin
may do at each point of a call), ``chain`` (the one place that runs plugins in order),
then ``plugins/`` and ``providers/``.
"""

__version__ = "0.1.0"
