"""The session page in a real browser (Debian's Chromium) against the emulator and the device runtime.

Emulated Cyton → BrainFlow's Cyton driver → ``python -m edge`` (its session page on 127.0.0.1) →
Chromium. The page is driven as a patient would: pair, check the electrodes, start, follow the cues.
Set ``HOTSPOT_SCREENSHOTS=<folder>`` to keep the screenshots (the README's come from this test).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from browser import PHONE, Traffic, browser  # noqa: F401  (fixture)
from edge.plainwords import CUE_TEXT
from edge.protocol import CueKind
from fixtures_chain import DeviceRig, chain, chain_settings  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.hil, pytest.mark.slow]

CODE = "482913"
DEVICE_ID = "demo-01"  # hardware.demo.write_device_config's pseudonym: must never reach the page


def open_rig(chain, chain_settings, folder: Path) -> DeviceRig:
    return DeviceRig(chain, folder, dict(chain_settings["session"]), once=False, autostart=False,
                     page={"listen": "127.0.0.1", "port": 0, "pairing_code": CODE})


def screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HOTSPOT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def post(page, path: str, body: dict | None = None) -> dict:
    """POST from inside the page (with its CSRF token, as its own buttons do); status and JSON body."""
    return page.evaluate("""async ([path, body]) => {
        const token = document.querySelector('meta[name="csrf-token"]').content;
        const response = await fetch(path, {method: "POST", body: JSON.stringify(body),
            headers: {"Content-Type": "application/json", "X-CSRF-Token": token}});
        return {status: response.status, body: await response.json()};
    }""", [path, body or {}])


def board_input(rig: DeviceRig, name: str) -> int:
    return rig.names.index(name) + 1


def test_page_guides_contact_check_cues_signal_and_result(chain, chain_settings, browser, tmp_path: Path) -> None:
    rig = open_rig(chain, chain_settings, tmp_path)
    try:
        url = rig.page_url()
        origin = url.rstrip("/")
        page = browser.new_page(viewport=PHONE)
        traffic = Traffic(page)
        page.goto(url)
        first, last = rig.names[0], rig.names[-1]
        page.wait_for_selector(f"circle[data-electrode={first}][data-state=good]", timeout=20_000)

        # Without the pairing code: read-only, start refused, no device id anywhere.
        assert page.is_hidden("#controls") and page.is_visible("#pairing")
        refused = post(page, "/api/start")
        assert refused["status"] == 403 and "pair" in refused["body"]["error"]
        assert DEVICE_ID not in page.content()
        state = page.evaluate("fetch('/api/state').then(r => r.text())")
        assert DEVICE_ID not in state and json.loads(state)["paired"] is False

        page.fill("#pair-code", CODE)
        page.click("#pair-button")
        page.wait_for_selector("#controls:not([hidden])")
        page.wait_for_function("() => document.getElementById('connection').textContent.includes('paired')")

        # Electrode contact through the Cyton's lead-off current: C3 fair, the last electrode poor.
        rig.emulator.set_impedance(board_input(rig, "C3"), 1500e3)
        rig.emulator.set_impedance(board_input(rig, last), 6000e3)
        page.click("#contact-button")
        page.wait_for_selector(f"#contact-table tr[data-electrode={last}][data-state=poor]", timeout=30_000)
        assert page.get_attribute("#contact-table tr[data-electrode=C3]", "data-state") == "fair"
        assert "Add gel under C3" in page.inner_text("#contact-table tr[data-electrode=C3]")
        assert page.is_disabled("#start-button")
        blocked = post(page, "/api/start")
        assert blocked["status"] == 409 and "electrodes" in blocked["body"]["error"]
        screenshot(page, "session-page-contact.png", tmp_path)
        rig.emulator.set_impedance(board_input(rig, last), 5e3)
        page.click("#contact-button")
        page.wait_for_function("() => document.getElementById('contact-summary').textContent.includes('well enough')",
                               timeout=30_000)
        page.wait_for_selector("#start-button:not([disabled])")

        page.evaluate("""() => {
            window.cues = [];
            const text = document.getElementById('cue-text');
            new MutationObserver(() => {
                if (window.cues[window.cues.length - 1] !== text.textContent) window.cues.push(text.textContent);
            }).observe(text, {childList: true, characterData: true, subtree: true});
        }""")
        page.click("#start-button")
        move = CUE_TEXT[CueKind.MOVE].format(hand=chain.holdout.hand)
        page.wait_for_function(f"() => document.getElementById('cue-text').textContent === {json.dumps(move)}",
                               timeout=30_000)
        screenshot(page, "session-page.png", tmp_path)

        # A flat electrode turns red on the live signal check (the quality gate's own rule).
        flat = rig.names[1]
        rig.emulator.inject("flat", channel=board_input(rig, flat), value_uv=0.0)
        page.wait_for_selector(f"circle[data-electrode={flat}][data-state=bad]", timeout=15_000)
        assert "no signal" in page.inner_text("#signal-advice")
        rig.emulator.clear_faults("flat")
        page.wait_for_selector(f"circle[data-electrode={flat}][data-state=good]", timeout=15_000)

        page.wait_for_selector("#result:not([hidden])", timeout=(rig.session_seconds() + 60) * 1000)
        kind = page.get_attribute("#result", "data-kind")
        assert kind in ("hotspot", "prior", "redo")  # prior: the EEG could not localise, the usual position
        if kind in ("hotspot", "prior"):
            assert page.is_visible("#result-target") and page.is_visible("#result-electrode")
            placement = page.inner_text("#result-placement")
            assert placement.startswith(("Centre the electrode", "Put the electrode")), placement
            assert page.inner_text("#result-uncertainty").strip()
        if kind in ("prior", "redo"):
            assert page.inner_text("#result-reasons").strip()
        page.wait_for_timeout(300)
        screenshot(page, "session-page-result.png", tmp_path)

        # The cues came in schedule order: rest, move, stop per trial, then finished.
        texts = {CUE_TEXT[kind_].format(hand=chain.holdout.hand): kind_ for kind_ in CueKind}
        seen = [texts[text] for text in page.evaluate("window.cues") if text in texts]
        trials = rig.schedule["trials"]
        assert seen == [CueKind.REST, CueKind.MOVE, CueKind.STOP] * trials + [CueKind.DONE], seen

        # Nothing came from outside the device.
        assert traffic.requests and traffic.sockets
        assert traffic.foreign(origin) == []
        assert traffic.errors == []
    finally:
        rig.close(terminate=True)
    # Stopped while the page was still open in the browser: its WebSocket is told the device is going away,
    # and the runtime stops without a traceback.
    stderr = (tmp_path / "runtime.stderr").read_text()
    assert "Traceback" not in stderr, stderr[-2000:]


def test_wrong_code_five_times_is_rate_limited(chain, chain_settings, browser, tmp_path: Path) -> None:
    rig = open_rig(chain, chain_settings, tmp_path)
    try:
        url = rig.page_url()
        page = browser.new_page(viewport=PHONE)
        statuses: list[int] = []
        page.on("response", lambda response: statuses.append(response.status) if "/api/pair" in response.url
                else None)
        page.goto(url)
        page.wait_for_selector("#pair-code")
        for attempt in range(5):
            page.fill("#pair-code", "000001")
            page.click("#pair-button")
            page.wait_for_function(f"() => window.performance.getEntriesByName(location.origin + '/api/pair').length "
                                   f">= {attempt + 1}")
            page.wait_for_function("() => document.getElementById('pair-message').textContent.includes('wrong')")
        # The sixth try is refused even with the right code.
        page.fill("#pair-code", CODE)
        page.click("#pair-button")
        page.wait_for_function("() => document.getElementById('pair-message').textContent.includes('too many')")
        assert statuses == [403] * 5 + [429]
        assert page.is_hidden("#controls")
        refused = post(page, "/api/start")
        assert refused["status"] == 403
        assert DEVICE_ID not in page.content()
    finally:
        rig.close(terminate=True)
