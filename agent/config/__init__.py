"""The desired state: one YAML file, validated into frozen models."""

from agent.config.errors import ConfigError, Problem
from agent.config.load import Loaded, default_config_path, load_config
from agent.config.models import Config, Library, Preset

__all__ = ["Config", "ConfigError", "Library", "Loaded", "Preset", "Problem", "default_config_path", "load_config"]
