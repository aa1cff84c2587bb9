"""The hub as an Oblivious HTTP gateway (hub/gateway.py): key directories
and redemptions go in encapsulated and come back encapsulated; nothing
that needs an account goes that way; what does not open gets a plain 400."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from hub.service import Hub
from mecene import ohttp, tokenwire
from tests.hub.test_tokens import OCT, Wallet, settle_unlinkable


async def _config(client: Any, hub_key: str) -> ohttp.KeyConfig:
    out = await client.call("GET", "/v1/ohttp-keys", expect=200, sign=False)
    return ohttp.KeyConfig.decode(tokenwire.parse_gateway_keys(out, hub_key))


async def _through(
    client: Any, config: ohttp.KeyConfig, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    content = b"" if body is None else json.dumps(body).encode()
    headers = (("content-type", "application/json"),) if body is not None else ()
    inner = ohttp.Request(method, "https", "hub", path, headers, content)
    sealed, context = ohttp.encapsulate_request(config, inner.encode())
    resp = await client.client.post(
        "/v1/ohttp", data=sealed, headers={"Content-Type": ohttp.REQUEST_TYPE}
    )
    assert resp.status == 200, await resp.text()
    assert resp.content_type == ohttp.RESPONSE_TYPE
    answer = ohttp.Response.decode(ohttp.decapsulate_response(context, await resp.read()))
    return answer.status, json.loads(answer.content)


async def test_a_redemption_and_a_directory_through_the_gateway(connect: Any, hub: Hub) -> None:
    alice = connect()
    await alice.deposit(2000)
    await settle_unlinkable(alice, OCT, 100)
    wallet = Wallet(alice)
    issued = await wallet.tokens_for(OCT, [("domain:example.org", 100)])
    config = await _config(alice, wallet.hub_key)
    # The directory through the gateway is the one published.
    status, directory = await _through(alice, config, "GET", f"/v1/token-keys/{OCT}")
    assert status == 200
    assert tokenwire.parse_directory(OCT, directory, wallet.hub_key).sha256 == wallet.directory
    # Redemptions: answered inside, spent once.
    creator, token, prefix = issued[0]
    body = tokenwire.build_redemption(tokenwire.Redemption(token, prefix, creator))
    assert (await _through(alice, config, "POST", "/v1/tokens/redeem", body))[0] == 201
    assert (await _through(alice, config, "POST", "/v1/tokens/redeem", body))[0] == 200
    again = tokenwire.build_redemption(tokenwire.Redemption(token, prefix, "domain:other.example"))
    status, out = await _through(alice, config, "POST", "/v1/tokens/redeem", again)
    assert (status, out["error"]) == (409, "token_spent")
    async with hub.engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM spent_tokens")) == 1


async def test_nothing_that_needs_an_account_goes_through_the_gateway(
    connect: Any, hub: Hub
) -> None:
    alice = connect()
    config = await _config(alice, hub.public_key)
    for method, path in (("GET", "/v1/account"), ("POST", "/v1/tokens"), ("GET", "/v1")):
        status, out = await _through(alice, config, method, path, {} if method == "POST" else None)
        assert (status, out["error"]) == (404, "not_found"), path
    # Malformed inside: the hub's own refusal, encapsulated.
    status, out = await _through(alice, config, "POST", "/v1/tokens/redeem", {"token": "x"})
    assert status == 400


async def test_what_does_not_open_gets_a_plain_400(connect: Any, hub: Hub) -> None:
    alice = connect()
    config = await _config(alice, hub.public_key)
    sealed, _ = ohttp.encapsulate_request(
        config, ohttp.Request("GET", "https", "hub", f"/v1/token-keys/{OCT}").encode()
    )
    for bad in (b"", sealed[:-1], sealed[:-1] + bytes([sealed[-1] ^ 1]), b"\x02" + sealed[1:]):
        resp = await alice.client.post(
            "/v1/ohttp", data=bad, headers={"Content-Type": ohttp.REQUEST_TYPE}
        )
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid"
    resp = await alice.client.post(
        "/v1/ohttp", data=sealed, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 415


async def test_the_gateway_key_is_signed_by_the_hub_and_the_same_in_every_process(
    connect: Any, hub: Hub
) -> None:
    from hub.gateway import gateway_of

    alice = connect()
    out = await alice.call("GET", "/v1/ohttp-keys", expect=200, sign=False)
    assert gateway_of(hub.key).config.encode() == tokenwire.parse_gateway_keys(out, hub.public_key)
    forged = {**out, "keys": out["keys"][:-4] + "AAAA"}
    try:
        tokenwire.parse_gateway_keys(forged, hub.public_key)
    except tokenwire.WireError as exc:
        assert "does not check" in str(exc)
    else:
        raise AssertionError("a configuration the hub did not sign was taken")
