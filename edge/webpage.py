"""The session page the device serves on the local network (aiohttp, in a thread beside the runtime loop).

Routes
------
``GET /``                 the page (HTML; its CSRF token in a ``<meta>`` tag), sets the session cookie
``GET /static/<file>``    the page's script and style sheet (nothing is loaded from anywhere else)
``GET /api/state``        the current :meth:`edge.pagestate.PageState.snapshot` (+ ``paired``)
``GET /ws``               a WebSocket that sends the snapshot whenever it changes
``POST /api/pair``        ``{"code": "..."}``: pair this browser with the device's pairing code
``POST /api/unpair``      forget the pairing
``POST /api/contact``     run the electrode contact check (paired only)
``POST /api/start``       start a session (paired only; refused with the reason in plain words when
                          the contact check has not passed or there is no signal)
``POST /api/stop``        stop the session (paired only)

Security
--------
* Only clients with a loopback, private or link-local address are served (403 otherwise), and the
  ``Host`` header must be an IP address, ``localhost`` or a ``.local`` (mDNS) name, which stops DNS
  rebinding from turning a web site the patient visits into a client of the device.
* Without pairing the page is read-only. It never shows the device id or anything about the patient.
* The session cookie is random, ``HttpOnly`` and ``SameSite=Strict``; pairing replaces it (no fixation).
* Every state change (POST) needs the session's CSRF token in an ``X-CSRF-Token`` header, and a
  cross-origin ``Origin`` is refused, also for the WebSocket.
* Wrong pairing codes are rate-limited: after :data:`MAX_FAILURES` wrong codes from one address it is
  locked out for :data:`LOCKOUT_S` seconds (doubling each time, up to :data:`MAX_LOCKOUT_S`), and after
  :data:`GLOBAL_MAX_FAILURES` wrong codes from anywhere within :data:`WINDOW_S` every address is.
  While locked out even the right code is refused (429 with ``Retry-After``).
* A restrictive Content-Security-Policy (scripts, styles and connections to this device only).
* Bad requests get a 4xx with one line of JSON ``{"error": ...}``, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import queue
import secrets
import string
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSCloseCode, WSMsgType, web

from edge.config import PageConfig
from edge.errors import ErrorCode, HotspotError
from edge.pagestate import PageState

logger = logging.getLogger(__name__)

FILES = Path(__file__).with_name("page")
STATIC = {"page.js": "text/javascript", "page.css": "text/css"}
COOKIE = "hotspot_session"
MAX_SESSIONS = 256
SESSION_IDLE_S = 12 * 3600.0
MAX_FAILURES = 5
WINDOW_S = 600.0
LOCKOUT_S = 60.0
MAX_LOCKOUT_S = 900.0
GLOBAL_MAX_FAILURES = 20
GLOBAL_LOCKOUT_S = 300.0
MAX_BODY_BYTES = 4096
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
REQUESTS = ("start", "stop", "contact")


@dataclass
class Visitor:
    """One browser's session."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    paired: bool = False
    seen: float = field(default_factory=time.monotonic)


class Throttle:
    """Counts wrong pairing codes per client address and overall, and says who is locked out.

    Parameters
    ----------
    clock : callable
        Seconds (monotonic); tests may pass their own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.failures: dict[str, list[float]] = {}
        self.locked_until: dict[str, float] = {}
        self.lockouts: dict[str, int] = {}

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try a code again (0 when it may now)."""
        now = self.clock()
        return max(0.0, max(self.locked_until.get(address, 0.0), self.locked_until.get("*", 0.0)) - now)

    def failed(self, address: str) -> None:
        """Record a wrong code from ``address``."""
        now = self.clock()
        for key, limit, lockout in ((address, MAX_FAILURES, None), ("*", GLOBAL_MAX_FAILURES, GLOBAL_LOCKOUT_S)):
            recent = [t for t in self.failures.get(key, []) if now - t < WINDOW_S] + [now]
            self.failures[key] = recent
            if len(recent) >= limit:
                count = self.lockouts.get(key, 0)
                seconds = lockout if lockout is not None else min(MAX_LOCKOUT_S, LOCKOUT_S * 2 ** count)
                self.locked_until[key] = now + seconds
                self.lockouts[key] = count + 1
                self.failures[key] = []

    def succeeded(self, address: str) -> None:
        """Forget ``address``'s wrong codes (its lockout history stays)."""
        self.failures.pop(address, None)


def _local(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_private or ip.is_link_local


def _host_allowed(host: str) -> bool:
    """An IP literal, ``localhost`` or an mDNS ``.local`` name, with or without a port."""
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        name = host.split(":", 1)[0]
    else:
        name = host
    if name == "localhost" or name.endswith(".local"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class PageServer:
    """Serve the session page from a background thread.

    Parameters
    ----------
    config : PageConfig
        Address, port and pairing code.
    state : PageState
        What the page shows; after :meth:`start` it is changed only on the server's thread
        (through :meth:`update`).

    Notes
    -----
    The runtime talks to it from its own thread with :meth:`update` (change the state) and
    :meth:`take_requests` (what paired users asked for: "start", "stop", "contact").
    """

    def __init__(self, config: PageConfig, state: PageState) -> None:
        self.config, self.state = config, state
        self.visitors: dict[str, Visitor] = {}
        self.throttle = Throttle()
        self._requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self._changed: asyncio.Condition | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.url = ""
        self._template = string.Template((FILES / "index.html").read_text(encoding="utf-8"))

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> str:
        """Start listening; return the page's address (``http://host:port/``).

        Raises
        ------
        HotspotError
            ``BAD_CONFIG`` when the address cannot be bound (in use, not this machine's).
        """
        self._thread = threading.Thread(target=self._serve, name="session-page", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._failure is not None:
            raise HotspotError(f"the session page cannot listen on {self.config.listen}:{self.config.port} "
                               f"({self._failure or 'timed out'}); free the port or change [page] port",
                               ErrorCode.BAD_CONFIG)
        return self.url

    def close(self) -> None:
        """Stop serving (open pages see the connection close); later updates change the state in place."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread, self._loop = None, None

    def update(self, change: Callable[[PageState], None]) -> None:
        """Apply ``change(state)`` on the server's thread and tell every open page (thread-safe).

        Before :meth:`start` and after :meth:`close` the change is applied here, to the state alone.
        """
        if self._loop is None:
            change(self.state)
            return
        self._loop.call_soon_threadsafe(self._apply, change)

    def take_requests(self) -> list[str]:
        """What paired users asked for since the last call, oldest first."""
        taken = []
        while True:
            try:
                taken.append(self._requests.get_nowait())
            except queue.Empty:
                return taken

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except (OSError, HotspotError) as err:
            self._failure = err
            self._ready.set()
            loop.close()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _setup(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/api/pair", self._pair)
        app.router.add_post("/api/unpair", self._unpair)
        for name in REQUESTS:
            app.router.add_post(f"/api/{name}", self._request)
        app.on_shutdown.append(self._close_sockets)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen, self.config.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.url = f"http://{shown}:{port}/"

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _close_sockets(self, app: web.Application) -> None:
        """On shutdown, close every open page's WebSocket ("going away"), which would otherwise hold it open."""
        for socket in set(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"the device is stopping")

    def _apply(self, change: Callable[[PageState], None]) -> None:
        try:
            change(self.state)
        except Exception:  # a bad update must not take the page down
            logger.exception("session page update failed")
        asyncio.ensure_future(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- security ----------------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        if not _local(request.remote):
            return _error(403, "this device serves its local network only")
        if not _host_allowed(request.host):
            return _error(421, "use the device's address or its .local name")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _error(403, "requests from other sites are refused")
        try:
            response = await handler(request)
        except web.HTTPException as err:
            response = _error(err.status, err.reason)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    def _visitor(self, request: web.Request) -> tuple[str, Visitor] | None:
        sid = request.cookies.get(COOKIE, "")
        visitor = self.visitors.get(sid)
        if visitor is None or time.monotonic() - visitor.seen > SESSION_IDLE_S:
            return None
        visitor.seen = time.monotonic()
        return sid, visitor

    def _new_visitor(self, response: web.StreamResponse, paired: bool = False) -> Visitor:
        if len(self.visitors) >= MAX_SESSIONS:
            oldest = min(self.visitors, key=lambda key: self.visitors[key].seen)
            del self.visitors[oldest]
        sid, visitor = secrets.token_urlsafe(32), Visitor(paired=paired)
        self.visitors[sid] = visitor
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/")
        return visitor

    def _checked(self, request: web.Request) -> tuple[str, Visitor] | web.Response:
        """The visitor of a state-changing request, or the 403 to send."""
        found = self._visitor(request)
        if found is None:
            return _error(403, "no session; reload the page")
        token = request.headers.get("X-CSRF-Token", "")
        if not hmac.compare_digest(token.encode(), found[1].csrf.encode()):
            return _error(403, "missing or wrong CSRF token; reload the page")
        return found

    # --- handlers ----------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.Response:
        response = web.Response(content_type="text/html", charset="utf-8")
        found = self._visitor(request)
        visitor = found[1] if found else self._new_visitor(response)
        response.text = self._template.substitute(csrf=visitor.csrf)
        return response

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            return _error(404, "no such file")
        return web.Response(body=(FILES / name).read_bytes(), content_type=STATIC[name], charset="utf-8")

    def _view(self, request: web.Request) -> dict:
        found = self._visitor(request)
        return dict(self.state.snapshot(), paired=bool(found and found[1].paired))

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self._view(request))

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_BODY_BYTES)
        await socket.prepare(request)
        self._sockets.add(socket)
        reader = asyncio.ensure_future(self._drain(socket))
        sent = -1
        try:
            while not socket.closed and not reader.done():
                version = self.state.version
                if version != sent:
                    sent = version
                    await socket.send_json(self._view(request))
                async with self._changed:
                    try:
                        await asyncio.wait_for(self._changed.wait(), timeout=1.0)
                    except asyncio.TimeoutError:
                        pass
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
        return socket

    @staticmethod
    async def _drain(socket: web.WebSocketResponse) -> None:
        """Read (and ignore) what a page sends; ends when it closes."""
        async for message in socket:
            if message.type == WSMsgType.ERROR:
                return

    async def _pair(self, request: web.Request) -> web.Response:
        checked = self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        address = request.remote or "?"
        wait = self.throttle.retry_after(address)
        if wait > 0:
            return _error(429, f"too many wrong codes; try again in {wait:.0f} s", **{"Retry-After": f"{wait:.0f}"})
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            return _error(400, 'send JSON {"code": "<the pairing code>"}')
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, str) or not code.strip():
            return _error(400, 'send JSON {"code": "<the pairing code>"}')
        if not hmac.compare_digest(code.strip().encode(), self.config.pairing_code.encode()):
            self.throttle.failed(address)
            return _error(403, "wrong pairing code")
        self.throttle.succeeded(address)
        sid, _ = checked
        self.visitors.pop(sid, None)
        response = web.json_response({"paired": True})
        visitor = self._new_visitor(response, paired=True)
        response.headers["X-CSRF-Token"] = visitor.csrf
        return response

    async def _unpair(self, request: web.Request) -> web.Response:
        checked = self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        checked[1].paired = False
        return web.json_response({"paired": False})

    async def _request(self, request: web.Request) -> web.Response:
        checked = self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        if not checked[1].paired:
            return _error(403, "pair this phone with the device first (the code is on the device's label)")
        action = request.path.rsplit("/", 1)[1]
        blocker = self._blocker(action)
        if blocker:
            return _error(409, blocker)
        self._requests.put(action)
        return web.json_response({"requested": action})

    def _blocker(self, action: str) -> str:
        """Why the device cannot do ``action`` now, in plain words ("" when it can)."""
        if action == "start":
            return self.state.start_blocker
        if action == "contact" and not self.state.contact["available"]:
            return "The electrode check needs a Cyton board."
        if action == "contact" and self.state.session["running"]:
            return "A session is running."
        return ""
