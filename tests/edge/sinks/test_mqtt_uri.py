"""mqtt:// and mqtts:// URIs into MqttConfig: defaults, every param, the password from the
environment, and errors that name the param."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import JetkitError
from edge.sinks.mqtt_uri import PASSWORD_ENV, MqttConfig, parse_mqtt_uri


def test_defaults_and_topic():
    config = parse_mqtt_uri("mqtt://broker.local/plant/line%201", {})
    assert (config.host, config.port, config.topic) == ("broker.local", 1883, "plant/line 1")
    assert (config.qos, config.client_id, config.tls, config.retain) == (1, "", False, False)
    assert config.topic_for("s0") == "plant/line 1"


def test_every_param():
    config = parse_mqtt_uri(
        "mqtts://10.0.0.5:9883/dets?qos=2&client_id=gate-1&username=edge&password=pw&ca=/c/ca.pem"
        "&cert=/c/me.pem&key=/c/me.key&insecure=1&retain=1&topic_per_stream=1",
        {},
    )
    assert config == MqttConfig(
        safe_uri=config.safe_uri,
        host="10.0.0.5",
        port=9883,
        topic="dets",
        qos=2,
        client_id="gate-1",
        username="edge",
        password="pw",
        tls=True,
        ca_path=Path("/c/ca.pem"),
        cert_path=Path("/c/me.pem"),
        key_path=Path("/c/me.key"),
        insecure=True,
        retain=True,
        topic_per_stream=True,
    )
    assert config.topic_for("door") == "dets/door"
    assert "pw" not in config.safe_uri and "pw" not in repr(config)


def test_tls_by_param_takes_the_tls_port():
    assert parse_mqtt_uri("mqtt://b/t?tls=1", {}).port == 8883
    assert parse_mqtt_uri("mqtts://b/t", {}).port == 8883


def test_the_password_comes_from_the_environment_for_a_named_user():
    environ = {PASSWORD_ENV: "from-env"}
    assert parse_mqtt_uri("mqtt://b/t?username=edge", environ).password == "from-env"
    assert parse_mqtt_uri("mqtt://b/t?username=edge&password=p", environ).password == "p"
    assert parse_mqtt_uri("mqtt://b/t", environ).password is None


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mqtt://b/t?qos=3", "param 'qos' must be 0, 1 or 2, got 3"),
        ("mqtt://b/t?qos=one", "param 'qos' must be an integer"),
        ("mqtt://b/t?qso=1", "unknown param 'qso' for mqtt://"),
        ("mqtt://b/t?retain=maybe", "param 'retain' must be 1 or 0"),
        ("mqtt://b/t?ca=/ca.pem", "param 'ca' is for TLS: use mqtts:// or add tls=1"),
        ("mqtt://b/t?insecure=1", "param 'insecure' is for TLS"),
        ("mqtts://b/t?key=/k.pem", "param 'key' needs 'cert'"),
        ("mqtt://b/t?password=p", "a password needs a user name"),
        ("mqtt://b:99999/t", "bad broker address 'b:99999'"),
        ("mqtt://b", "no topic"),
        ("mqtt://:1883/t", "no broker host"),
        ("mqtt://b/t/#", "has a wildcard"),
        ("mqtt://b/t/+/x", "has a wildcard"),
        ("mqtt://edge:pw@b/t", "give the user as username=NAME"),
    ],
)
def test_bad_uris_name_the_problem(uri, message):
    with pytest.raises(JetkitError, match=message.replace("(", r"\(")):
        parse_mqtt_uri(uri, {})
