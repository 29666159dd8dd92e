"""Deployment backends: the Backend protocol and the subprocess implementation."""

from canary_harness.deploy.protocol import Backend, ServiceHandle, ServiceSpec

__all__ = ["Backend", "ServiceHandle", "ServiceSpec"]
