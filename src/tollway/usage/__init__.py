"""Usage: the record of each call (``record``) and what becomes of it: the accountant
that makes records off the request path (``accountant``), the access log, the metrics,
the price table, the batching writer with its journal and dead-letter file (rows made
storable by ``storable``), the store and the queries the admin API and ``tollway usage``
answer (``access_log``, ``metrics``, ``pricing``, ``writer``, ``journal``,
``dead_letter``, ``store``, ``query``, ``timestamps``). docs/records.md tells how no
record is lost. With telemetry on, a traced call's record also becomes its OpenTelemetry
spans: which calls are traced (``tracing``, on the request path), the spans
(``spans``), their export (``span_export``; docs/telemetry.md)."""
