"""Config: read the YAML file, substitute the environment, validate it whole."""

from tollway.config.load import ConfigError, load_config, load_config_text
from tollway.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config", "load_config_text"]
