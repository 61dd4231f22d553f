"""Request, token and quota limits: their rules (``config``, ``rules``), the token
reservation they settle after the call (``reservation``), what an unreachable state store
does (``failure_mode``), and the four plugins built on them."""
