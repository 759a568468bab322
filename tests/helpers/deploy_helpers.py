"""Driving a `file://` device's agent step by step, as a flash (or a host posing as one) does."""

from __future__ import annotations

from deploy.bundle import read_index
from deploy.flash import upload_name
from deploy.transport import AgentTransport, parse_target


def upload(root, bundle):
    """Send `bundle` to the device's staging folder; (the transport, the upload's name)."""
    transport = AgentTransport(parse_target(f"file://{root}"))
    name = upload_name(read_index(bundle))
    with open(bundle, "rb") as handle:
        transport.call("receive", {"release": name, "offset": 0}, stdin=handle)
    return transport, name


def install_only(root, bundle):
    """What a concurrent flash has done before its commit: upload and install, not activate."""
    transport, name = upload(root, bundle)
    return transport.call("install", {"release": name})
