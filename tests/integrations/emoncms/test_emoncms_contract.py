"""The contract server follows emoncms's documented input API, so the sink tests mean something."""

from __future__ import annotations

import json
import zlib

import pytest
import requests

from tests.integrations.emoncms.contract_server import DEFAULT_KEY, ContractServer, Point
from tests.integrations.emoncms.emon_helpers import NOW

NOW_S = int(NOW)
BEARER = {"Authorization": f"Bearer {DEFAULT_KEY}"}


def bulk(server: ContractServer, data: object, **params: object) -> requests.Response:
    """POST input/bulk.json with the Bearer header."""
    form = {"data": json.dumps(data), **{k: str(v) for k, v in params.items()}}
    return requests.post(f"{server.url}/input/bulk.json", data=form, headers=BEARER, timeout=5)


@pytest.mark.parametrize(("params", "times"), [
    ({}, [NOW_S - 4, NOW_S - 2, NOW_S]),  # legacy: the last entry arrived now
    # The code computes now - offset (so -10 -> now + 10), unlike its doc comment.
    ({"offset": -10}, [NOW_S, NOW_S + 2, NOW_S + 4]),
    ({"time": 1387730127}, [1387730117, 1387730119, 1387730121]),
    ({"sentat": 543}, [NOW_S - 543 + 520, NOW_S - 543 + 522, NOW_S - 543 + 524]),
])
def test_bulk_time_reference_rules(server: ContractServer, params: dict[str, int],
                                   times: list[int]) -> None:
    """Entry times are relative to now-sentat, now-offset, time, or the last entry (legacy)."""
    offsets = [520, 522, 524] if "sentat" in params else (
        [0, 2, 4] if not params else [-10, -8, -6])
    data = [[t, 16, 100 + i] for i, t in enumerate(offsets)]
    assert bulk(server, data, **params).text == "ok"
    assert [p.time for p in server.stored()] == times


def test_bulk_objects_contribute_every_key(server: ContractServer) -> None:
    """EmonCms >= 11.0.5 stores every key of an object (foreach; measured on 11.16.8:
    {"V":1,"I":2} made inputs V and I); bare values are named by position."""
    bulk(server, [[NOW_S, "n", {"a": 1, "b": 2}, {"c": 3}, 7]], time=0)
    assert server.stored() == [Point("n", "1", NOW_S, 7.0), Point("n", "a", NOW_S, 1.0),
                               Point("n", "b", NOW_S, 2.0), Point("n", "c", NOW_S, 3.0)]


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.999])
def test_time_truncates_the_server_clock(server: ContractServer, fraction: float) -> None:
    """PHP's time() truncates: at x.999 s the server's now is still x (sentat and legacy)."""
    server.clock = lambda: NOW_S + fraction
    bulk(server, [[NOW_S - 10, "n", {"a": 1}]], sentat=NOW_S)
    bulk(server, [[0, "n", {"b": 1}]])
    assert [(p.name, p.time) for p in server.stored()] == [("a", NOW_S - 10), ("b", NOW_S)]


def test_booleans_become_one_and_zero(server: ContractServer) -> None:
    """(float) true is 1 and (float) false is 0 (measured: {"B": true} stored 1)."""
    bulk(server, [[NOW_S, "n", {"on": True}, {"off": False}]], time=0)
    assert [(p.name, p.value) for p in server.stored()] == [("off", 0.0), ("on", 1.0)]


def test_bulk_null_and_text_become_zero(server: ContractServer) -> None:
    """PHP's (float) cast stores null and text as 0: why the sink leaves them out."""
    bulk(server, [[NOW_S, "n", {"a": None}, {"b": "ON"}]], time=0)
    assert [p.value for p in server.stored()] == [0.0, 0.0]


def test_names_are_stored_sanitized(server: ContractServer) -> None:
    """Characters other than letters, digits, _ - . and space are stripped by emoncms."""
    bulk(server, [[NOW_S, "node/1", {"V+": 1}]], time=0)
    assert server.stored() == [Point("node1", "V", NOW_S, 1.0)]


def test_node_is_cleaned_before_lookup_so_no_duplicate(server: ContractServer) -> None:
    """process_node cleans the node before looking it up: odd/names is node oddnames on
    every post, the same inputs each time (measured on 11.16.8: one node, no duplicate)."""
    bulk(server, [[NOW_S, "odd/names", {"V": 1}]], time=0)
    bulk(server, [[NOW_S + 1, "odd/names", {"V": 2}]], time=0)
    assert {(p.node, p.name) for p in server.stored()} == {("oddnames", "V")}
    assert len(server.stored()) == 2


def test_deflate_body_is_a_format_error(server: ContractServer) -> None:
    """PHP does not inflate request bodies: $_POST stays empty and bulk answers 200
    {"success": false, "message": "Format error, json string supplied is not valid"}
    (measured on 11.16.8); a proxy that inflates (inflate=True) makes it work."""
    form = f"data={json.dumps([[NOW_S, 'n', {'a': 1}]])}&time=0".encode()
    headers = {**BEARER, "Content-Type": "application/x-www-form-urlencoded",
               "Content-Encoding": "deflate"}
    answer = requests.post(f"{server.url}/input/bulk.json", data=zlib.compress(form),
                           headers=headers, timeout=5)
    assert (answer.status_code, answer.json()) == (200, {
        "success": False, "message": "Format error, json string supplied is not valid"})
    assert server.stored() == []
    server.inflate = True
    answer = requests.post(f"{server.url}/input/bulk.json", data=zlib.compress(form),
                           headers=headers, timeout=5)
    assert answer.text == "ok" and len(server.stored()) == 1


def test_no_key_is_an_empty_200_that_stores_nothing(server: ContractServer) -> None:
    """Without a key EmonCms answers 200 with an empty body (measured: Content-Length 0)."""
    answer = requests.post(f"{server.url}/input/bulk.json", timeout=5,
                           data={"data": json.dumps([[NOW_S, "n", {"a": 1}]]), "time": "0"})
    assert (answer.status_code, answer.text) == (200, "")
    assert server.stored() == []


def test_stripped_header_is_an_empty_200_and_the_body_key_works() -> None:
    """Behind a web server dropping Authorization, a Bearer request is an empty 200 storing
    nothing; the key as the apikey POST field ($_POST['apikey']) is accepted."""
    server = ContractServer(strip_authorization=True).start()
    try:
        data = {"data": json.dumps([[NOW_S, "n", {"a": 1}]]), "time": "0"}
        answer = requests.post(f"{server.url}/input/bulk.json", data=data, headers=BEARER,
                               timeout=5)
        assert (answer.status_code, answer.text, server.stored()) == (200, "", [])
        answer = requests.post(f"{server.url}/input/bulk.json", timeout=5,
                               data={**data, "apikey": DEFAULT_KEY})
        assert answer.text == "ok" and server.stored() == [Point("n", "a", NOW_S, 1.0)]
    finally:
        server.stop()


def test_format_errors_are_json_bodies(server: ContractServer) -> None:
    """A bad data field is HTTP 200 with {"success": false, "message": ...}."""
    answer = requests.post(f"{server.url}/input/bulk.json", data={"data": "[[1,"},
                           headers=BEARER, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"success": False,
                             "message": "Format error, json string supplied is not valid"}


def test_auth_by_apikey_parameter_or_bearer(server: ContractServer) -> None:
    """Both emoncms auth methods work and are recorded; a wrong key is 401."""
    requests.get(f"{server.url}/input/post", params={"node": "a", "json": "{x:1}",
                                                     "apikey": DEFAULT_KEY}, timeout=5)
    requests.post(f"{server.url}/input/post.json", data={"node": "a", "fulljson": '{"y":2}'},
                  headers=BEARER, timeout=5)
    wrong = requests.post(f"{server.url}/input/bulk.json", data={"data": "[[0,1,1]]"},
                          headers={"Authorization": "Bearer nope"}, timeout=5)
    assert [r.auth for r in server.requests] == ["apikey", "bearer", "bearer"]
    assert (wrong.status_code, wrong.text) == (401, "Invalid API key")
    assert [(p.name, p.value) for p in server.stored()] == [("x", 1.0), ("y", 2.0)]


def test_post_csv_and_time(server: ContractServer) -> None:
    """input/post with csv names values 1, 2, ... at the given time."""
    answer = requests.post(f"{server.url}/input/post/emontx", headers=BEARER, timeout=5,
                           data={"csv": "100,200", "time": "1700000000"})
    assert answer.text == "ok"
    assert server.stored() == [Point("emontx", "1", 1700000000, 100.0),
                               Point("emontx", "2", 1700000000, 200.0)]


def test_org_limits_drop_long_names() -> None:
    """With emoncms.org's limits, a node over 16 bytes is dropped."""
    server = ContractServer(org_limits=True).start()
    try:
        bulk(server, [[0, "x" * 17, {"a": 1}], [0, "short", {"a": 1}]], time=NOW_S)
        assert [p.node for p in server.stored()] == ["short"]
        assert server.dropped == [("x" * 17, "a", "node longer than 16 bytes")]
    finally:
        server.stop()
