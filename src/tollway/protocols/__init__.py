"""Wire formats: request, response and stream shapes, and the one module that names the
APIs and dialects (``apis``). Pure: no I/O here."""
