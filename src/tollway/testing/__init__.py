"""What ships for testing Tollway and its plugins without sockets (``harness``)."""
