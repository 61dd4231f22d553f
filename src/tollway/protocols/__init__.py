"""Wire formats: request, response and stream shapes. No I/O here."""
