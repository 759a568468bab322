"""The MQTT sink against a real mosquitto: delivery with QoS 1, a topic per stream, an outage
that queues and then delivers (and drops the oldest beyond the outbox), a broker that is down at
start-up, credentials accepted and refused, and TLS."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from edge.errors import JetkitError
from edge.sinks import open_sink
from edge.sinks.mqtt import MqttSink
from edge.sinks.mqtt_uri import PASSWORD_ENV, parse_mqtt_uri

from .conftest import Subscriber, wait_until


@pytest.fixture
def logged():
    return []


def _payloads(messages) -> list[tuple[str, str, int]]:
    return [
        (message.topic, json.loads(message.payload)["stream"], json.loads(message.payload)["frame"])
        for message in messages
    ]


def test_results_arrive_as_json_with_qos_1(broker, make_results, logged):
    subscriber = Subscriber(broker.port, "jetkit/#")
    sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/jetkit/out?qos=1", logged.append)
    results = make_results(5)
    for result in results:
        sink.write(result)
    messages = subscriber.take(5)
    sink.close()
    subscriber.close()

    assert [json.loads(m.payload) for m in messages] == [r.to_dict() for r in results]
    assert {m.topic for m in messages} == {"jetkit/out"} and {m.qos for m in messages} == {1}
    assert json.loads(messages[0].payload)["detections"][0]["class_name"] == "red"
    stats = sink.stats()
    assert (stats.published, stats.queued, stats.dropped, stats.disconnects) == (5, 0, 0, 0)
    assert logged == []


def test_topic_per_stream_publishes_under_the_stream_id(broker, make_results, logged):
    subscriber = Subscriber(broker.port, "cams/#")
    sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/cams?topic_per_stream=1", logged.append)
    for result in make_results(2, "door") + make_results(2, "yard"):
        sink.write(result)
    received = _payloads(subscriber.take(4))
    sink.close()
    subscriber.close()

    assert sorted(received) == [
        ("cams/door", "door", 0),
        ("cams/door", "door", 1),
        ("cams/yard", "yard", 0),
        ("cams/yard", "yard", 1),
    ]


def test_analytics_events_go_one_by_one_to_the_streams_events_topic(broker, make_results, logged):
    from dataclasses import replace

    subscriber = Subscriber(broker.port, "cams/events/#")
    sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/cams", logged.append)
    plain = make_results(1, "door")[0]
    events = ({"schema": 1, "type": "new", "stream": "door", "track_id": 4},
              {"schema": 1, "type": "line_crossing", "stream": "door", "track_id": 4,
               "line": "gate", "direction": "in"})  # fmt: skip
    sink.write(replace(plain, events=events))
    received = subscriber.take(2)
    sink.close()
    subscriber.close()

    assert [m.topic for m in received] == ["cams/events/door"] * 2
    assert [json.loads(m.payload) for m in received] == list(events)


def test_an_outage_queues_results_and_delivers_them_on_reconnect(broker, make_results, logged):
    subscriber = Subscriber(broker.port, "out")
    sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/out", logged.append)
    before, during = make_results(2), make_results(6, "s1")
    for result in before:
        sink.write(result)
    subscriber.take(2)
    wait_until(lambda: sink.stats().published == 2, what="the first results acknowledged")

    broker.stop()
    wait_until(lambda: not sink.stats().connected, what="the sink noticing the outage")
    for result in during:
        sink.write(result)  # returns: nothing waits for the broker
    stats = sink.stats()
    assert (stats.queued, stats.disconnects, stats.published) == (6, 1, 2)

    broker.start()
    received: list[tuple[str, str, int]] = []
    while len(received) < 6:
        # QoS 1 is at least once: the broker may hand a result from before the outage again.
        received += [item for item in _payloads(subscriber.take(1)) if item[1] == "s1"]
    wait_until(lambda: sink.stats().published == 8, what="all 8 results acknowledged")
    sink.close()
    subscriber.close()

    assert received == [("out", "s1", index) for index in range(6)]
    assert sink.stats().dropped == 0
    assert any("connection lost" in line for line in logged)
    assert any("sending 6 queued results" in line for line in logged)


def test_a_full_outbox_drops_the_oldest_and_counts_them(broker, make_results, logged):
    subscriber = Subscriber(broker.port, "out")
    config = parse_mqtt_uri(f"mqtt://127.0.0.1:{broker.port}/out", {})
    sink = MqttSink(config, logged.append, outbox_limit=3)
    sink.open()
    broker.stop()
    wait_until(lambda: not sink.stats().connected, what="the sink noticing the outage")
    for result in make_results(5):
        sink.write(result)
    assert (sink.stats().queued, sink.stats().dropped) == (3, 2)

    broker.start()
    received = _payloads(subscriber.take(3))
    sink.close()
    subscriber.close()

    assert [frame for _, _, frame in received] == [2, 3, 4]
    assert any("dropping the oldest" in line for line in logged)


def test_a_broker_down_at_start_up_is_a_warning_and_results_go_once_it_is_up(
    broker, make_results, logged
):
    broker.stop()
    sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/out", logged.append)
    stats = sink.stats()
    assert not stats.connected and stats.failed_connects >= 1
    assert stats.last_error == f"cannot reach 127.0.0.1:{broker.port}"
    assert "retrying in the background" in logged[0]
    for result in make_results(3):
        sink.write(result)

    broker.start()
    subscriber = Subscriber(broker.port, "out")
    wait_until(lambda: sink.stats().published == 3, what="the queued results acknowledged")
    sink.close()
    subscriber.close()


def test_a_host_that_does_not_resolve_fails_at_open():
    with pytest.raises(
        JetkitError, match="cannot resolve the broker host 'no-such-broker.invalid'"
    ):
        open_sink("mqtt://no-such-broker.invalid:1883/out")


def test_unknown_params_and_a_bad_qos_fail_at_open_naming_the_param():
    with pytest.raises(JetkitError, match="unknown param 'qso' for mqtt://"):
        open_sink("mqtt://127.0.0.1:1883/out?qso=1")
    with pytest.raises(JetkitError, match="param 'qos' must be 0, 1 or 2, got 3"):
        open_sink("mqtt://127.0.0.1:1883/out?qos=3")


def test_credentials_from_the_environment_are_accepted(broker, make_results, logged, monkeypatch):
    broker.stop()
    broker.require_password("edge", "s3cret")
    broker.start()
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    subscriber = Subscriber(broker.port, "out", "edge", "s3cret")
    sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/out?username=edge", logged.append)
    sink.write(make_results(1)[0])
    assert len(subscriber.take(1)) == 1
    sink.close()
    subscriber.close()


def test_a_refused_password_at_open_is_an_error_without_the_password(broker):
    broker.stop()
    broker.require_password("edge", "s3cret")
    broker.start()
    uri = f"mqtt://127.0.0.1:{broker.port}/out?username=edge&password=wrong"
    with pytest.raises(JetkitError) as caught:
        open_sink(uri)
    message = str(caught.value)
    assert "refused user 'edge'" in message and PASSWORD_ENV in message
    assert "wrong" not in message and "password=***" in message


def test_a_refusal_after_start_up_is_counted_and_retried_not_raised(broker, make_results, logged):
    sink = open_sink(f"mqtt://127.0.0.1:{broker.port}/out", logged.append)
    broker.stop()
    broker.require_password("edge", "s3cret")  # anonymous clients are refused from now on
    broker.start()
    refused = "the broker refused the connection"
    wait_until(lambda: (sink.stats().last_error or "").startswith(refused), what="a refusal")
    sink.write(make_results(1)[0])
    stats = sink.stats()
    assert not stats.connected and stats.queued == 1 and stats.failed_connects >= 1
    assert any("refused" in line for line in logged)
    sink.close()
    assert sink.stats().dropped == 1


@pytest.fixture
def tls_files(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o644)
    return cert, key


def test_mqtts_with_a_ca_file_publishes_and_the_wrong_ca_is_an_error(
    broker, tls_files, make_results, logged
):
    cert, key = tls_files
    broker.stop()
    broker.extra_config = f"allow_anonymous true\ncertfile {cert}\nkeyfile {key}\n"
    broker.start()
    sink = open_sink(f"mqtts://127.0.0.1:{broker.port}/out?ca={cert}", logged.append)
    sink.write(make_results(1)[0])
    wait_until(lambda: sink.stats().published == 1, what="the result acknowledged over TLS")
    sink.close()

    with pytest.raises(
        JetkitError, match="TLS with 127.0.0.1:.* failed: CERTIFICATE_VERIFY_FAILED"
    ):
        open_sink(f"mqtts://127.0.0.1:{broker.port}/out")
    with pytest.raises(JetkitError, match="cannot load the TLS files \\(ca=/nowhere/ca.pem\\)"):
        open_sink(f"mqtts://127.0.0.1:{broker.port}/out?ca=/nowhere/ca.pem")
