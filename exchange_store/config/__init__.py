"""Configuration: the ``.properties`` reader, typed keys, units and the etc/ loader."""

from __future__ import annotations

from exchange_store.config.load import EtcConfig, env_name, load_etc
from exchange_store.config.properties import (
    PropertiesFile,
    load_properties_file,
    parse_properties,
)
from exchange_store.config.schema import Key, KeyKind, Schema
from exchange_store.config.units import format_data_size, parse_data_size, parse_duration

__all__ = [
    "EtcConfig",
    "Key",
    "KeyKind",
    "PropertiesFile",
    "Schema",
    "env_name",
    "format_data_size",
    "load_etc",
    "load_properties_file",
    "parse_data_size",
    "parse_duration",
    "parse_properties",
]
