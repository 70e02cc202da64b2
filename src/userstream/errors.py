"""Typed errors that say what went wrong and how to fix it (the CLI prints them without a traceback)."""

from __future__ import annotations


class UserstreamError(Exception):
    """Base of every error the project raises on purpose."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class ConfigError(UserstreamError):
    """Settings are invalid or inconsistent."""


class InstallError(UserstreamError):
    """A dependency (Java, Maven, a package, a download) is missing or failed."""


class PortInUseError(UserstreamError):
    """A port a local service needs is already taken."""


class ServiceError(UserstreamError):
    """A service failed to start, or did not become healthy in time."""


class SourceError(UserstreamError):
    """The random-user API failed after every retry."""
