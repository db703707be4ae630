"""The SDK's version (also the package version, see pyproject.toml)."""

VERSION = "0.1.0"
