"""`tunelab serve`: the app in a real headless Chromium through textual-serve, and what the server refuses."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, here, subprocess_env

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# textual-serve's client keeps its xterm.js terminal in a closure; the test's copy of the script also hands it
# to the page, so the test reads the screen's text from the terminal's own buffer.
EXPOSE = ("this.terminal=new ", "this.terminal=window.tunelabTerminal=new ")
SCREEN_TEXT = """() => {
    const t = window.tunelabTerminal;
    if (!t) return "";
    const b = t.buffer.active, rows = [];
    for (let i = 0; i < t.rows; i++) rows.push(b.getLine(b.viewportY + i)?.translateToString(true) ?? "");
    return rows.join("\\n");
}"""


def wait_for(what: str, check: Callable[[], object], timeout: float = 180.0) -> object:
    """`check()` once it is truthy; generous, since a busy 2-core host starts a model slowly."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.25)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def end_group(proc: subprocess.Popen[bytes]) -> None:
    """The process and everything it started (its own session): asked to stop (textual-serve quits each
    app), then whatever is left killed."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)


@pytest.fixture
def served(home, tmp_path) -> Iterator[str]:
    """`tunelab serve` on a free port, as a user starts it, in its own session; its URL."""
    port = free_port()
    xdg = {f"XDG_{d}_HOME": str(tmp_path / "xdg" / d.lower()) for d in ("CONFIG", "DATA", "CACHE", "STATE")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui.launcher", "serve", "--port", str(port)],
            cwd=REPO,
            env=subprocess_env(TUNELAB_HOME=str(home), HF_HUB_OFFLINE="1", **xdg),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("the server's start line", lambda: proc.poll() is not None or f"on {url} " in log.read_text())
        assert proc.poll() is None, log.read_text()
        yield url
    finally:
        end_group(proc)


@pytest.fixture
def chromium(tmp_path) -> Iterator[str]:
    """Chromium headless with a fresh profile, in its own session; its DevTools endpoint."""
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; `make browser`)")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "chromium.log").open("wb"),
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        port = wait_for("Chromium's DevTools port", lambda: port_file.exists() and port_file.read_text().split()[:1])
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        end_group(proc)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
def test_the_app_runs_in_a_headless_browser_and_takes_keys(chromium, served, tmp_path):  # no Chromium: skip first
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright drives the browser: pip install playwright"
    )
    exposed = []

    def expose(route):
        response = route.fetch()
        script = response.text()
        exposed.append(script.count(EXPOSE[0]))
        route.fulfill(response=response, body=script.replace(*EXPOSE))

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(chromium)
        try:
            page = browser.contexts[0].new_page()
            page.set_viewport_size({"width": 1200, "height": 800})
            page.route("**/static/js/textual.js", expose)
            page.goto(served)
            screen = wait_for("the main screen", lambda: "ready: demo" in (text := page.evaluate(SCREEN_TEXT)) and text)
            assert exposed == [1], "textual-serve's client changed: the test can no longer read its terminal"
            assert "Prompt" in screen and "Training" in screen and "esc closes" not in screen
            main = tmp_path / "main.png"
            page.screenshot(path=main)
            assert png_size(main) == (1200, 800) and main.stat().st_size > 10_000

            page.focus(".xterm-helper-textarea")  # where xterm.js takes the keys
            page.keyboard.press("F1")
            helped = wait_for("the help screen", lambda: "esc closes" in (text := page.evaluate(SCREEN_TEXT)) and text)
            assert "ready: demo" in helped  # the same app, its help over the main screen
            help_shot = tmp_path / "help.png"
            page.screenshot(path=help_shot)
            assert png_size(help_shot) == (1200, 800) and help_shot.read_bytes() != main.read_bytes()
        finally:
            browser.close()


def test_a_page_of_another_site_or_a_rebound_name_cannot_drive_it(served):
    port = served.rsplit(":", 1)[1]
    client = httpx.Client(trust_env=False, timeout=30)  # straight to localhost, never through a proxy
    page = client.get(served, headers={"Host": f"localhost:{port}"})
    assert page.status_code == 200 and f'"ws://localhost:{port}/ws"' in page.text  # links follow the address used
    rebound = client.get(served, headers={"Host": f"attacker.example:{port}"})
    assert rebound.status_code == 403 and "not this machine" in rebound.text
    hijack = client.get(f"{served}/ws", headers={"Origin": "http://attacker.example"})
    assert hijack.status_code == 403 and "not this server" in hijack.text


def test_a_host_off_this_machine_needs_public(capsys, monkeypatch):
    served = []

    def serving(command, host, port, title):
        served.append((shlex.split(command), host))
        return type("Stub", (), {"serve": lambda self: None})()

    monkeypatch.setattr("tui.cli.serving.server_class", lambda: serving)
    monkeypatch.setattr("tui.cli.serving.check_port", lambda host, port: None)  # no bind off loopback in a test
    refused = here(capsys, "serve", "--host", "0.0.0.0")
    assert refused.returncode == 2 and served == []
    assert refused.stderr.count("\n") == 1 and "--public" in refused.stderr and "--host 0.0.0.0" in refused.stderr
    warned = here(capsys, "serve", "--host", "0.0.0.0", "--public", "--adapter", "runA")
    assert warned.returncode == 0 and "tunelab: warning: serving on 0.0.0.0:8000" in warned.stderr
    (argv, host), *_ = served
    assert host == "0.0.0.0" and argv[1:3] == ["-m", "tui.launcher"] and "runA" in argv  # the same model options


def test_a_port_in_use_is_one_line(capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        ran = here(capsys, "serve", "--port", str(port))
    assert ran.returncode == 2
    assert ran.stderr == f"tunelab: error: --port {port} on 127.0.0.1 is in use; pick another with --port\n"


def test_without_textual_serve_one_line_names_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)  # import fails as when it is not installed
    ran = here(capsys, "serve")
    assert ran.returncode == 2
    assert ran.stderr == "tunelab: error: tunelab serve needs textual-serve: pip install 'tunelab[serve]'\n"
