"""`tunelab serve`: the app in a browser through textual-serve. Every page load starts its own `tunelab`
process with the command's model options. Whoever reaches the port drives the app (runs models, trains,
reads and writes the data dir) with no password, so it listens on this machine only unless `--public`."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import shlex
import socket
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.errors import TunelabError
from tui.cli.options import model_argv, model_options
from tui.cli.output import warn

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.typedefs import Handler
    from textual_serve.server import Server

LOOPBACK_NAMES = {"localhost", "localhost."}


def add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (one off this machine needs --public)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument(
        "--public",
        action="store_true",
        help="allow a --host other machines reach: anyone who reaches the port drives the app, with no password",
    )


def run_serve(args: argparse.Namespace) -> int:
    options, _, _ = model_options(args)
    host, port = args.host, args.port
    if not 0 < port < 65536:
        raise TunelabError(f"{{0}} must be 1..65535, got {port}", "port")
    if not is_loopback(host):
        if not args.public:
            raise TunelabError(
                f"{{0}} {host} can be reached from other machines, and whoever reaches it drives the app with no "
                "password; pass --public to serve there anyway",
                "host",
            )
        warn(
            [
                f"serving on {host}:{port} for other machines: anyone who reaches this port can run models, train "
                "and read or write your data, with no password"
            ]
        )
    server = server_class()
    check_port(host, port)
    command = shlex.join([sys.executable, "-m", "tui.launcher", *model_argv(options)])
    server(command, host=host, port=port, title="tunelab").serve()
    return 0


def is_loopback(host: str) -> bool:
    """Only names that need no lookup count: `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url(host: str, port: int) -> str:
    return f"http://[{host.strip('[]')}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_port(host: str, port: int) -> None:
    """Bind once before serving, so a port in use is one line said before the start line (textual-serve
    binds after it)."""
    try:
        socket.create_server((host.strip("[]"), port)).close()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TunelabError(f"{{0}} {port} on {host} is in use; pick another with --port", "port") from None
        if exc.errno == errno.EACCES:
            raise TunelabError(f"{{0}} {port} needs privileges to listen on; pick one above 1023", "port") from None
        raise TunelabError(f"{{0}} {host}: cannot listen there ({exc.strerror or exc})", "host") from None


def server_class() -> type[Server]:
    """textual-serve's server with tunelab's start line, links that follow the address the browser used
    (`localhost` or a public name, not the bound one), and a check of every request: a page on another site
    open in the same browser must not drive the app (websockets skip the same-origin rule), nor a DNS name
    rebound to 127.0.0.1 reach a loopback server."""
    try:
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError:
        raise TunelabError("tunelab serve needs textual-serve: pip install 'tunelab[serve]'") from None

    class GuardedServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            loopback = is_loopback(self.host)

            @web.middleware
            async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
                if refusal := refused(request, loopback=loopback):
                    return web.Response(status=403, text=f"tunelab serve: {refusal}\n")
                return await handler(request)

            app.middlewares.append(guard)
            return app

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            self.public_url = f"{request.scheme}://{request.host}"  # one event loop: read before the next request
            return await super().handle_index(request)

        def initialize_logging(self) -> None:
            super().initialize_logging()
            logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # not a line per file the page fetches

        async def on_startup(self, app: web.Application) -> None:
            print(f"tunelab: serving the app on {url(self.host, self.port)} (ctrl+c stops)", flush=True)

    return GuardedServer


def refused(request: web.Request, *, loopback: bool) -> str | None:
    """Why a request is refused, or None: on a loopback server the Host must name this machine; a request
    from a page (its Origin) must come from a page this server served."""
    name = urlsplit(f"//{request.host}").hostname or ""
    if loopback and not is_loopback(name):
        return f"Host {request.host} is not this machine"
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return f"Origin {origin} is not this server"
    return None
