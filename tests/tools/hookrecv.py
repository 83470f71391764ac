#!/usr/bin/env python3
"""An HTTPS notification receiver for tests/net/notify.sh.

hookrecv.py ADDR PORT CERT KEY LOG CONTROL

Every POST is appended to LOG as one JSON line: {"path", "ms" (wall time),
"auth" (the Authorization header or null), "status" (what was answered),
"body" (the body, parsed)}. CONTROL is a JSON file read on each request:
{"fail": {"/path": N}} answers 503 to the first N POSTs to that path,
{"stall": {"/path": S}} holds the answer S seconds (a receiver that hangs).
Every read has a timeout; bodies above 64 KiB are refused.
"""
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

addr, port, cert, key, log_path, control_path = sys.argv[1:7]
lock = threading.Lock()
seen = {}


class Handler(BaseHTTPRequestHandler):
    timeout = 10

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 65536:
            self.send_error(413)
            return
        raw = self.rfile.read(n)
        try:
            with open(control_path) as f:
                control = json.load(f)
        except (OSError, ValueError):
            control = {}
        with lock:
            seen[self.path] = seen.get(self.path, 0) + 1
            nth = seen[self.path]
        status = 503 if nth <= control.get("fail", {}).get(self.path, 0) else 200
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        with lock, open(log_path, "a") as f:
            f.write(json.dumps({"path": self.path, "ms": int(time.time() * 1000),
                                "auth": self.headers.get("Authorization"),
                                "status": status, "body": body}) + "\n")
        time.sleep(control.get("stall", {}).get(self.path, 0))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server = ThreadingHTTPServer((addr, int(port)), Handler)
server.daemon_threads = True
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
