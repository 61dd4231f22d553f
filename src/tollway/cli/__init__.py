"""The ``tollway`` command line (``main``): how commands find their config and database
(``config_file``), ``consumers`` and ``usage``."""
