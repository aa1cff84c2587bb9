"""mecene/ohttp.py against RFC 9458's Appendix A, and against what a relay or
an attacker could hand the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mecene import ohttp

V = {
    k: bytes.fromhex(v) if k != "source" else v
    for k, v in json.loads(
        (Path(__file__).parents[1] / "fixtures" / "rfc9458_vectors.json").read_text()
    ).items()
}


def test_the_rfc_s_key_configuration_reads_and_writes_back() -> None:
    config = ohttp.KeyConfig.decode(V["key_config"])
    assert config.key_id == 1
    assert config.suites == ((1, 1), (1, 3))  # AES-128-GCM and ChaCha20-Poly1305
    assert config.encode() == V["key_config"]
    gateway = ohttp.Gateway(1, V["skR"])
    assert gateway.config.public_key == config.public_key


def test_the_rfc_s_request_encapsulates_to_its_bytes_and_the_gateway_opens_it() -> None:
    config = ohttp.KeyConfig.decode(V["key_config"])
    sealed, context = ohttp.encapsulate_request(config, V["request"], ephemeral=V["skE"])
    assert sealed == V["encapsulated_request"]
    assert context.enc == V["pkE"]
    assert context.secret == V["export_secret"]
    request, _sealer = ohttp.Gateway(1, V["skR"]).decapsulate(
        V["encapsulated_request"], response_nonce=V["response_nonce"]
    )
    assert request == V["request"]
    assert ohttp.Request.decode(request) == ohttp.Request("GET", "https", "example.com", "/")


def test_the_rfc_s_response_encapsulates_to_its_bytes_and_the_client_opens_it() -> None:
    _request, sealer = ohttp.Gateway(1, V["skR"]).decapsulate(
        V["encapsulated_request"], response_nonce=V["response_nonce"]
    )
    assert ohttp._response_keys(sealer.secret, sealer.enc, V["response_nonce"]) == (
        V["aead_key"],
        V["aead_nonce"],
    )
    assert sealer.seal(V["response"]) == V["encapsulated_response"]
    context = ohttp.ResponseContext(V["export_secret"], V["pkE"])
    opened = ohttp.decapsulate_response(context, V["encapsulated_response"])
    assert opened == V["response"]
    assert ohttp.Response.decode(opened) == ohttp.Response(200)


def test_a_round_trip_with_fresh_keys_carries_a_redemption() -> None:
    gateway = ohttp.Gateway.derived(b"a secret every hub process shares" * 2)
    assert ohttp.Gateway.derived(b"a secret every hub process shares" * 2).config == gateway.config
    body = b'{"token":"...","prefix":"...","creator":"domain:example.org"}'
    request = ohttp.Request(
        "POST",
        "https",
        "hub.example",
        "/v1/tokens/redeem",
        (("content-type", "application/json"),),
        body,
    )
    sealed, context = ohttp.encapsulate_request(gateway.config, request.encode())
    again, _ = ohttp.encapsulate_request(gateway.config, request.encode())
    assert sealed != again  # a fresh ephemeral key each time: two requests look unrelated
    opened, sealer = gateway.decapsulate(sealed)
    assert ohttp.Request.decode(opened) == request
    answer = ohttp.Response(201, (("content-type", "application/json"),), b'{"cents":10}')
    assert (
        ohttp.Response.decode(ohttp.decapsulate_response(context, sealer.seal(answer.encode())))
        == answer
    )


def test_what_does_not_open_is_refused_without_saying_more() -> None:
    gateway = ohttp.Gateway(1, V["skR"])
    good = V["encapsulated_request"]
    for bad in (
        b"",
        good[:40],
        good[:-1],
        good[:-1] + bytes([good[-1] ^ 1]),  # one bit of the ciphertext
        bytes([2]) + good[1:],  # another key id
        good[:7] + bytes(32) + good[39:],  # another encapsulated key
        good + bytes(ohttp.MAX_MESSAGE),
    ):
        with pytest.raises(ohttp.OhttpError):
            gateway.decapsulate(bad)
    other = ohttp.Gateway.derived(b"another gateway's secret" * 2, key_id=1)
    with pytest.raises(ohttp.OhttpError):
        other.decapsulate(good)
    context = ohttp.ResponseContext(V["export_secret"], V["pkE"])
    with pytest.raises(ohttp.OhttpError):
        ohttp.decapsulate_response(context, V["encapsulated_response"][:-1] + b"\x00")


@given(st.binary(max_size=300))
def test_no_bytes_crash_the_binary_http_decoders(data: bytes) -> None:
    for decode in (ohttp.Request.decode, ohttp.Response.decode, ohttp.KeyConfig.decode):
        try:
            decode(data)
        except ohttp.OhttpError:
            pass


@given(
    st.sampled_from(["GET", "POST"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_{}", max_size=80),
    st.binary(max_size=2000),
)
def test_requests_encode_and_decode_back(method: str, path: str, content: bytes) -> None:
    request = ohttp.Request(method, "https", "hub.example", "/" + path, (("a", "b"),), content)
    assert ohttp.Request.decode(request.encode()) == request
    assert ohttp.Request.decode(request.encode() + bytes(16)) == request  # zero padding
