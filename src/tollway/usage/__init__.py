"""Usage: the record of each call (``record``) and what becomes of it: the accountant
that makes records off the request path (``accountant``), the access log, the metrics,
the price table, the batching writer, the store and the queries the admin API and
``tollway usage`` answer (``access_log``, ``metrics``, ``pricing``, ``writer``, ``store``,
``query``, ``timestamps``)."""
