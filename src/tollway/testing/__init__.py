"""What ships for testing Tollway and its plugins: one plugin at a time without sockets
(``harness``), or a whole gateway in this process (``gateway``)."""
