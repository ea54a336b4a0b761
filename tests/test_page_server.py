"""The session page's web server on its own (a real aiohttp server on 127.0.0.1): pairing, CSRF, cookies,
rate limiting, local-network rules, live updates and plain 4xx answers to bad requests."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
from collections.abc import Iterator

import aiohttp
import pytest

from edge.config import PageConfig
from edge.pagestate import PageState
from edge.protocol import Message, MessageType, SessionState
from edge.webpage import GLOBAL_MAX_FAILURES, LOCKOUT_S, MAX_FAILURES, PageServer, Throttle, _host_allowed, _local
from train.head import standard_positions_head_mm

CODE = "739105"
WORN = ["FC3", "C5", "C3", "C1", "CP3"]


@pytest.fixture()
def server() -> Iterator[PageServer]:
    state = PageState(WORN, standard_positions_head_mm(), "right", contact_available=True, contact_required=True)
    page = PageServer(PageConfig(True, "127.0.0.1", 0, CODE), state)
    page.start()
    yield page
    page.close()


class Client:
    """A browser-like client: keeps the session cookie and the CSRF token of the page it loaded."""

    def __init__(self, server: PageServer) -> None:
        self.host, self.port = server.url.split("//")[1].rstrip("/").split(":")
        self.cookie = ""
        self.csrf = ""

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=10)
        sent = {"Cookie": self.cookie} if self.cookie else {}
        sent.update(headers or {})
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read()
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";")[0]
        connection.close()
        return response, data

    def load(self):
        response, data = self.request("GET", "/")
        self.csrf = re.search(rb'name="csrf-token" content="([^"]+)"', data).group(1).decode()
        return response, data

    def post(self, path: str, body: dict | None = None, csrf: str | None = None, **headers: str):
        sent = {"Content-Type": "application/json", "X-CSRF-Token": self.csrf if csrf is None else csrf, **headers}
        response, data = self.request("POST", path, json.dumps(body or {}).encode(), sent)
        return response.status, json.loads(data) if data else {}, response

    def pair(self, code: str = CODE):
        status, body, response = self.post("/api/pair", {"code": code})
        if status == 200:
            self.csrf = response.getheader("X-CSRF-Token")
        return status, body, response


def test_page_sets_a_strict_httponly_session_cookie_and_a_tight_policy(server) -> None:
    client = Client(server)
    response, data = client.load()
    assert response.status == 200
    cookie = response.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    policy = response.getheader("Content-Security-Policy")
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert response.getheader("X-Frame-Options") == "DENY" and response.getheader("Referrer-Policy") == "no-referrer"
    assert b"http://" not in data and b"https://" not in data  # nothing referenced outside the device
    for name in ("page.js", "page.css"):
        static, content = client.request("GET", f"/static/{name}")
        assert static.status == 200 and b"http://" not in content.replace(b"http://www.w3.org/2000/svg", b"")
    assert client.request("GET", "/static/../webpage.py")[0].status == 404


def test_state_changes_need_the_session_and_its_csrf_token(server) -> None:
    client = Client(server)
    assert client.post("/api/pair", {"code": CODE})[0] == 403  # no session yet
    client.load()
    status, body, _ = client.post("/api/pair", {"code": CODE}, csrf="forged")
    assert status == 403 and "CSRF" in body["error"]
    status, body, _ = client.post("/api/pair", {"code": CODE}, Origin="http://evil.example")
    assert status == 403 and "other sites" in body["error"]
    response, data = client.request("POST", "/api/pair", b"{not json", {"X-CSRF-Token": client.csrf})
    assert response.status == 400 and "JSON" in json.loads(data)["error"]
    old_cookie = client.cookie
    status, body, _ = client.pair()
    assert status == 200 and body == {"paired": True} and client.cookie != old_cookie  # a new session on pairing
    stale = Client(server)
    stale.cookie, stale.csrf = old_cookie, "x"
    assert stale.post("/api/stop")[0] == 403


def test_start_is_refused_without_pairing_and_until_the_contact_check_passed(server) -> None:
    client = Client(server)
    client.load()
    status, body, _ = client.post("/api/start")
    assert status == 403 and "pair" in body["error"]
    client.pair()
    server.update(lambda state: state.on_message(Message(MessageType.STATUS, {
        "state": int(SessionState.IDLE), "trial": 0, "n_trials": 10, "n_good": 0, "samples": 1, "lost": 0,
        "signal_ok": 1})))
    status, body, _ = client.post("/api/start")
    assert status == 409 and body["error"] == "Check the electrodes first."
    assert client.post("/api/contact")[0] == 200
    results = [{"electrode": name, "board_input": i + 1, "impedance_kohm": 5.0, "state": "good"}
               for i, name in enumerate(WORN)]
    server.update(lambda state: state.set_contact(False, None, results, True))
    status, body, _ = client.post("/api/start")
    assert status == 200 and body == {"requested": "start"}
    assert client.post("/api/stop")[0] == 200
    assert server.take_requests() == ["contact", "start", "stop"]
    state = json.loads(client.request("GET", "/api/state")[1])
    assert state["paired"] is True and "device_id" not in json.dumps(state)


def test_wrong_codes_are_rate_limited_per_address_and_overall(server) -> None:
    client = Client(server)
    client.load()
    for _ in range(MAX_FAILURES):
        status, body, _ = client.pair("000001")
        assert status == 403 and body["error"] == "wrong pairing code"
    status, body, response = client.pair(CODE)  # the right code, but locked out
    assert status == 429 and "too many wrong codes" in body["error"]
    assert int(response.getheader("Retry-After")) == pytest.approx(LOCKOUT_S, abs=2)

    now = [0.0]
    throttle = Throttle(clock=lambda: now[0])
    for _ in range(MAX_FAILURES):
        throttle.failed("192.168.1.20")
    assert throttle.retry_after("192.168.1.20") == LOCKOUT_S and throttle.retry_after("192.168.1.21") == 0
    now[0] += LOCKOUT_S
    assert throttle.retry_after("192.168.1.20") == 0
    for _ in range(MAX_FAILURES):
        throttle.failed("192.168.1.20")
    assert throttle.retry_after("192.168.1.20") == 2 * LOCKOUT_S  # doubles
    for index in range(GLOBAL_MAX_FAILURES):  # many addresses, few tries each: everyone waits
        throttle.failed(f"10.0.0.{index}")
    assert throttle.retry_after("10.9.9.9") > 0


def test_local_network_only_and_no_dns_rebinding(server) -> None:
    assert all(_local(a) for a in ("127.0.0.1", "192.168.1.5", "10.1.2.3", "fe80::1", "::1", "::ffff:172.16.0.9"))
    assert not any(_local(a) for a in ("8.8.8.8", "2001:4860:4860::8888", "", None, "not-an-ip"))
    assert all(_host_allowed(h) for h in ("127.0.0.1:8080", "pt-0042.local:8080", "pt-0042.local", "[::1]:80",
                                          "localhost:8080", "192.168.1.5"))
    assert not any(_host_allowed(h) for h in ("evil.example", "evil.example:8080", "device.lan"))
    client = Client(server)
    response, data = client.request("GET", "/", headers={"Host": "attacker.example"})
    assert response.status == 421
    response, data = client.request("GET", "/", headers={"Host": f"pt-0042.local:{client.port}"})
    assert response.status == 200


def test_bad_requests_get_one_line_4xx(server) -> None:
    client = Client(server)
    client.load()
    response, data = client.request("GET", "/nothing-here")
    assert response.status == 404 and json.loads(data)["error"]
    response, data = client.request("PUT", "/api/start")
    assert response.status == 405 and json.loads(data)["error"]
    big = json.dumps({"code": "1" * 10000}).encode()
    response, data = client.request("POST", "/api/pair", big, {"X-CSRF-Token": client.csrf,
                                                                 "Content-Type": "application/json"})
    assert response.status == 413
    status, body, _ = client.post("/api/pair", {"code": 123456})
    assert status == 400


def test_websocket_sends_every_change_and_refuses_other_origins(server) -> None:
    async def scenario() -> tuple[list[dict], int]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.url + "ws") as socket:
                first = await socket.receive_json(timeout=5)
                server.update(lambda state: state.set_notice("Hello"))
                second = await socket.receive_json(timeout=5)
            try:
                async with session.ws_connect(server.url + "ws", headers={"Origin": "http://evil.example"}):
                    refused = 0
            except aiohttp.WSServerHandshakeError as err:
                refused = err.status
        return [first, second], refused

    (first, second), refused = asyncio.run(scenario())
    assert first["paired"] is False and first["step"] == "contact" and first["notice"] == ""
    assert second["notice"] == "Hello" and second["version"] > first["version"]
    assert refused == 403


def test_an_update_after_close_changes_the_state_in_place() -> None:
    # The runtime's last status comes after everything else; a page already closed must not turn it into
    # a "loop is closed" traceback (nor lose it from the state).
    state = PageState(WORN, standard_positions_head_mm(), "right", contact_available=True, contact_required=True)
    page = PageServer(PageConfig(True, "127.0.0.1", 0, CODE), state)
    page.start()
    page.close()
    page.update(lambda state: state.set_notice("Stopped"))
    assert page.state.notice == "Stopped"
    page.close()  # a second close is a no-op


def test_close_tells_an_open_page_the_device_is_going_away_and_does_not_wait_for_it() -> None:
    # An open page's WebSocket would otherwise hold the server's shutdown until its timeout: the runtime's
    # stop then failed after 10 s with a TimeoutError traceback.
    import threading
    import time

    state = PageState(WORN, standard_positions_head_mm(), "right", contact_available=True, contact_required=True)
    page = PageServer(PageConfig(True, "127.0.0.1", 0, CODE), state)
    page.start()
    connected, seen = threading.Event(), {}

    async def open_page() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(page.url + "ws") as socket:
                await socket.receive_json(timeout=5)
                connected.set()
                message = await socket.receive(timeout=30)
                seen["type"], seen["code"] = message.type, socket.close_code

    client = threading.Thread(target=asyncio.run, args=(open_page(),))
    client.start()
    assert connected.wait(10)
    started = time.monotonic()
    page.close()
    elapsed = time.monotonic() - started
    client.join(10)
    assert elapsed < 5.0, elapsed
    assert seen == {"type": aiohttp.WSMsgType.CLOSE, "code": 1001}
