"""The admin API on its own listener: the app and its token check (``app``), consumers,
usage and metrics routes (``consumers``, ``usage``), and the dashboard with its static
files (``dashboard``, ``static/``)."""
