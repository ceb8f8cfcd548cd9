#!/usr/bin/env python3
"""Issue "Hold under attack": the figures its closing note asks for, against
a fresh release `latchkey serve` on 127.0.0.1 with default settings (Argon2id
m=19 MiB t=2, default hashing threads and queue, throttling on), except that
127.0.0.1 is a trusted proxy so one machine can play several addresses.

    python3 bench/attack.py [path/to/latchkey]   # default: target/release/latchkey

(a) the largest hostile body each route accepts, sent 50 times: latency
    (median, max) and server CPU per request (utime+stime of the server
    process from /proc ÷ requests);
(b) GET /healthz p99 (sequential probes for 5 s) idle and while 8 clients
    send (a)'s sign-in and /oauth/token bodies in a loop;
(c) 60 concurrent wrong passwords for one account from one address: how
    many were evaluated (401) and how many refused (429); then the right one;
(d) 1,000 sign-ins from two addresses sent and abandoned at once: a real
    user's sign-in (third address) during the flood and right after it, and
    whether the flooding addresses are throttled afterwards.

Only 127.0.0.1 is contacted; every loop is bounded in count and time.
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/latchkey")
PASSWORD = "correct horse battery"
TICK = os.sysconf("SC_CLK_TCK")


def start_server(data_dir, config):
    proc = subprocess.Popen(
        [BIN, "--log-json", "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
         "--config", config],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    for line in proc.stdout:
        if time.time() > deadline:
            raise SystemExit("server did not start")
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("fields", {}).get("message") == "listening":
            host, port = event["fields"]["addr"].rsplit(":", 1)
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, int(port)
    raise SystemExit("server exited")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, method, path, body=b"", headers=None):
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, data
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise


def json_request(path, value, ip=None):
    headers = {"content-type": "application/json"}
    if ip:
        headers["x-forwarded-for"] = ip
    return "POST", path, json.dumps(value).encode(), headers


def form_request(path, body):
    return "POST", path, body.encode(), {"content-type": "application/x-www-form-urlencoded"}


def distinct_scope(limit):
    tokens, size, i = [], 0, 0
    while size + len(f"s{i} ") < limit:
        tokens.append(f"s{i}")
        size += len(f"s{i} ")
        i += 1
    return " ".join(tokens)


def hostile_requests():
    sign_in = json_request("/v1/sign-in", {
        "username": "victim", "password": "whatever it is",
        "scope": distinct_scope(16 * 1024 - 100)})
    token = form_request(
        "/oauth/token",
        "grant_type=refresh_token&refresh_token=lkr_x&scope="
        + distinct_scope(64 * 1024 - 100).replace(" ", "+"))
    username = json_request("/v1/sign-in", {
        "username": "\ufdfa" * ((16 * 1024 - 100) // 6), "password": "whatever it is"})
    refresh = json_request("/v1/tokens/refresh", {"refresh_token": "lkr_" + "A" * (64 * 1024 - 100)})
    introspect = form_request("/oauth/introspect", "token=" + "A" * (64 * 1024 - 100))
    me = ("GET", "/v1/me", b"", {"authorization": "Bearer " + "e30." * 15000 + "x"})
    return {
        "sign-in, 16 KiB scope of distinct tokens": sign_in,
        "/oauth/token, 64 KiB scope of distinct tokens": token,
        "sign-in, 16 KiB username of U+FDFA": username,
        "refresh, 64 KiB refresh token": refresh,
        "introspect, 64 KiB token": introspect,
        "/v1/me, 60 KB bearer token": me,
    }


def measure_hostile(port, pid):
    print("(a) largest hostile bodies, 50 each")
    print("| request | status | median ms | max ms | server CPU per request (ms) |")
    print("|---|---|---|---|---|")
    c = Client(port)
    for name, (method, path, body, headers) in hostile_requests().items():
        times, status = [], None
        cpu0 = cpu_seconds(pid)
        for _ in range(50):
            t0 = time.perf_counter()
            status, _ = c.send(method, path, body, headers)
            times.append((time.perf_counter() - t0) * 1000)
        cpu = (cpu_seconds(pid) - cpu0) * 1000 / 50
        print(f"| {name} ({len(body) or len(headers.get('authorization', ''))} B) | {status} "
              f"| {statistics.median(times):.2f} | {max(times):.2f} | {cpu:.2f} |")


def healthz_p99(port, seconds=5.0):
    c = Client(port)
    times = []
    end = time.time() + seconds
    while time.time() < end and len(times) < 100_000:
        t0 = time.perf_counter()
        status, _ = c.send("GET", "/healthz")
        assert status == 200
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[int(len(times) * 0.99)], len(times)


def measure_healthz(port):
    print("\n(b) /healthz p99")
    idle, n = healthz_p99(port)
    print(f"idle: p99 {idle:.2f} ms over {n} probes")
    stop = threading.Event()
    requests = hostile_requests()
    chosen = [requests["sign-in, 16 KiB scope of distinct tokens"],
              requests["/oauth/token, 64 KiB scope of distinct tokens"]]
    sent = [0]

    def attacker(i):
        c = Client(port)
        method, path, body, headers = chosen[i % 2]
        deadline = time.time() + 30
        while not stop.is_set() and time.time() < deadline:
            c.send(method, path, body, headers)
            sent[0] += 1

    threads = [threading.Thread(target=attacker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    busy, n = healthz_p99(port)
    stop.set()
    for t in threads:
        t.join()
    print(f"with 8 hostile requests in flight ({sent[0]} sent): p99 {busy:.2f} ms over {n} probes")


def measure_guesses(port):
    print("\n(c) 60 concurrent wrong passwords for one account, one address")
    c = Client(port)
    status, _ = c.send(*json_request("/v1/sign-up", {"username": "guessme", "password": PASSWORD}))
    assert status == 201, status
    statuses = []
    barrier = threading.Barrier(60)

    def guess(i):
        method, path, body, headers = json_request(
            "/v1/sign-in", {"username": "guessme", "password": f"wrong guess {i}"}, ip="192.0.2.50")
        conn = Client(port)
        conn.conn.connect()
        barrier.wait(timeout=30)
        statuses.append(conn.send(method, path, body, headers)[0])

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    right = c.send(*json_request("/v1/sign-in", {"username": "guessme", "password": PASSWORD},
                                 ip="192.0.2.50"))[0]
    print(f"evaluated (401): {statuses.count(401)}, refused (429): {statuses.count(429)}, "
          f"other: {[s for s in statuses if s not in (401, 429)]}; the right password right after: {right}")


def abandoned(port, ip, i):
    body = json.dumps({"username": f"nobody{i}", "password": "a wrong password"})
    head = (f"POST /v1/sign-in HTTP/1.1\r\nhost: 127.0.0.1\r\nx-forwarded-for: {ip}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n")
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall((head + body).encode())
        s.close()
    except OSError:
        pass


def measure_flood(port):
    print("\n(d) 1,000 abandoned sign-ins from two addresses")
    c = Client(port)
    c.send(*json_request("/v1/sign-up", {"username": "realuser", "password": PASSWORD}))
    done = threading.Event()

    def flood():
        threads = []
        for i in range(1000):
            ip = "198.51.100.1" if i % 2 else "203.0.113.1"
            t = threading.Thread(target=abandoned, args=(port, ip, i))
            t.start()
            threads.append(t)
            if len(threads) >= 50:
                threads.pop(0).join()
        for t in threads:
            t.join()
        done.set()

    real = Client(port)
    real.conn.connect()
    t0 = time.perf_counter()
    f = threading.Thread(target=flood)
    f.start()
    during = []
    while not done.is_set() and len(during) < 50:
        s0 = time.perf_counter()
        status, _ = real.send(*json_request("/v1/sign-in", {"username": "realuser", "password": PASSWORD},
                                            ip="192.0.2.10"))
        during.append(((time.perf_counter() - s0) * 1000, status))
    f.join()
    flood_s = time.perf_counter() - t0
    s0 = time.perf_counter()
    status, _ = real.send(*json_request("/v1/sign-in", {"username": "realuser", "password": PASSWORD},
                                        ip="192.0.2.10"))
    after = (time.perf_counter() - s0) * 1000
    print(f"flood sent in {flood_s:.2f} s; real sign-ins during it: "
          f"{[f'{ms:.0f} ms/{st}' for ms, st in during]}")
    print(f"real sign-in right after the flood: {after:.0f} ms, status {status}")
    for ip in ("198.51.100.1", "203.0.113.1"):
        status, _ = real.send(*json_request("/v1/sign-in", {"username": "realuser", "password": PASSWORD}, ip=ip))
        print(f"flooding address {ip} now gets {status}")


def main():
    with tempfile.TemporaryDirectory() as work:
        config = os.path.join(work, "latchkey.toml")
        with open(config, "w") as f:
            f.write('trusted_proxies = ["127.0.0.1"]\n[rate_limits]\nsign_up_per_minute = 0\n'
                    'tokens_per_minute = 0\n')
        for part in (measure_hostile, measure_healthz, measure_guesses, measure_flood):
            proc, port = start_server(os.path.join(work, part.__name__), config)
            try:
                if part is measure_hostile:
                    part(port, proc.pid)
                else:
                    part(port)
            finally:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
