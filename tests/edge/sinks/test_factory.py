"""open_sink: each scheme to its sink, JSON lines to a file or stdout, errors that name the URI
with its password masked, and an import that loads no optional library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge.errors import JetkitError
from edge.sinks import SINK_SCHEMES, JsonlSink, open_sink


def test_jsonl_appends_one_object_per_result(tmp_path, make_results):
    path = tmp_path / "out" / "results.jsonl"
    results = make_results(3)
    for chunk in (results[:2], results[2:]):
        sink = open_sink(f"jsonl://{path}")
        assert isinstance(sink, JsonlSink)
        for result in chunk:
            sink.write(result)
        sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in results]


@pytest.mark.parametrize("uri", ["-", "jsonl://-"])
def test_a_dash_is_stdout(uri, make_results, capsys):
    sink = open_sink(uri)
    sink.write(make_results(1)[0])
    sink.close()
    assert json.loads(capsys.readouterr().out)["frame"] == 0


def test_an_unknown_scheme_lists_the_known_ones():
    with pytest.raises(
        JetkitError, match="sink 'udp://host:1': unknown scheme 'udp'; use one of"
    ) as caught:
        open_sink("udp://host:1")
    assert all(f"{scheme}://" in str(caught.value) for scheme in SINK_SCHEMES)
    with pytest.raises(JetkitError, match="unknown scheme '\\(none\\)'"):
        open_sink("results.jsonl")


def test_errors_name_the_uri_with_the_password_masked():
    with pytest.raises(JetkitError) as caught:
        open_sink("mqtt://broker/t?username=u&password=s3cret&qos=9")
    assert str(caught.value) == (
        "sink 'mqtt://broker/t?username=u&password=***&qos=9': param 'qos' must be 0, 1 or 2, got 9"
    )
    with pytest.raises(JetkitError, match="sink 'jsonl://': names no file"):
        open_sink("jsonl://")


def test_importing_the_sinks_loads_no_optional_library():
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, edge.sinks; print(json.dumps(sorted(sys.modules)))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert not {"paho", "cv2", "gi"} & set(json.loads(loaded))
