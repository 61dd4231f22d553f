"""Which route a request belongs to: routes and the route table (``routes``), host
patterns (``hosts``)."""
