"""The process: its composition root (``root.Runtime``), where its config comes from
(``config_source``), and how it runs: sockets, servers, signals, workers (``serve``)."""
