"""Config: read the YAML file, substitute the environment, validate it whole (``load``)
against the schema (``schema``); the built-in quickstart config (``quickstart``)."""
