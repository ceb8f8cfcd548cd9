#!/usr/bin/env python3
"""A loopback SMTP sink for the tests (PyPI aiosmtpd, pinned in
requirements.txt): accepts every message on 127.0.0.1 and writes each to
the directory given, as JSON with its envelope recipients, subject and
decoded plain-text and HTML bodies (`<n>.json`, written to a temporary
name and renamed, so a reader never sees half a file).

    python3 tests/smtp/sink.py --port 0 --dir DIR [--auth USER:PASSWORD]

Prints `listening on <port>` on stdout once it accepts connections (port
0: one the kernel picks), and runs until it is terminated.
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        existing = [
            int(name.split(".")[0])
            for name in os.listdir(directory)
            if name.endswith(".json") and name.split(".")[0].isdigit()
        ]
        self.numbers = itertools.count(max(existing, default=0) + 1)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        bodies = {}
        for part in message.walk():
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html") and kind not in bodies:
                bodies[kind] = part.get_content()
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message.get("Subject", "")),
            "text": bodies.get("text/plain", ""),
            "html": bodies.get("text/html", ""),
        }
        number = next(self.numbers)
        path = os.path.join(self.directory, f"{number}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", required=True)
    parser.add_argument(
        "--auth",
        help="USER:PASSWORD: require AUTH with these (over plain loopback SMTP)",
    )
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    handler = Sink(args.dir)
    loop = asyncio.get_running_loop()
    options = {"hostname": "sink.test"}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, data):
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == user
                and data.password.decode() == password
            )
            return AuthResult(success=ok)

        options.update(
            authenticator=authenticator, auth_required=True, auth_require_tls=False
        )
    server = await loop.create_server(
        lambda: SMTP(handler, **options), host="127.0.0.1", port=args.port
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
