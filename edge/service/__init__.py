"""The streaming daemon: configuration, model pointer, HTTP endpoints, reload, systemd."""
