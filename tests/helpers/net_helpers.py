"""Ports for the servers the tests start (brokers, daemons, sshd) and for refused connections."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A local TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
