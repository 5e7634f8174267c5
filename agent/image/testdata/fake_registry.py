#!/usr/bin/env python3
"""A scripted registry for registry_client_test: it serves canned responses and plays the parts a
real registry will not (bearer tokens, tampered blobs, broken or stalled transfers).

    fake_registry.py --config CONFIG.json --port-file F --log LOG [--tls-cert C --tls-key K]

Listens on 127.0.0.1, on a port of the kernel's choosing, which it writes to F (atomically) once it
accepts connections. Every request is appended to LOG as one JSON line
{"method", "path", "query", "authorization"} before it is answered.

CONFIG.json:
  {"auth": {"type": "none" | "bearer" | "basic",
            "username": U, "password": P,      (basic: required; bearer: the token server's)
            "token": T, "service": S, "expires_in": N},
   "routes": {"/v2/...": {"status": 200, "headers": {...},
                          "body": "text" | "body_b64": "..." ,
                          "redirect": "/elsewhere",     (a 307 to this path or URL)
                          "truncate": true,             (announce the length, send half, close)
                          "stall": true}}}              (announce the length, send nothing)
With bearer auth, /v2/ requests need "Authorization: Bearer T"; others get a 401 whose
WWW-Authenticate names the realm <this server>/token. Paths outside /v2/ need no auth. Unknown
paths answer 404 with a registry error body (MANIFEST_UNKNOWN, BLOB_UNKNOWN or NAME_UNKNOWN).
"""

import argparse
import base64
import http.server
import json
import os
import re
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()

    with open(args.config) as f:
        config = json.load(f)
    auth = config.get("auth", {"type": "none"})
    routes = config.get("routes", {})
    log_lock = threading.Lock()
    scheme = "https" if args.tls_cert else "http"

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: the JSON log is enough
            pass

        def record(self, path, query):
            entry = {
                "method": self.command,
                "path": path,
                "query": query,
                "authorization": self.headers.get("Authorization", ""),
            }
            with log_lock:
                with open(args.log, "a") as f:
                    f.write(json.dumps(entry) + "\n")

        def send(self, status, body=b"", headers=None):
            self.send_response(status)
            headers = dict(headers or {})
            headers.setdefault("Content-Length", str(len(body)))
            headers.setdefault("Docker-Distribution-Api-Version", "registry/2.0")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def send_error_json(self, status, code, message, extra_headers=None):
            body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
            headers = {"Content-Type": "application/json; charset=utf-8"}
            headers.update(extra_headers or {})
            self.send(status, body, headers)

        def host(self):
            return "%s://127.0.0.1:%d" % (scheme, self.server.server_address[1])

        def basic_ok(self):
            want = "Basic " + base64.b64encode(
                ("%s:%s" % (auth.get("username"), auth.get("password"))).encode()).decode()
            return self.headers.get("Authorization", "") == want

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            path, query = url.path, urllib.parse.parse_qs(url.query)
            self.record(path, query)
            kind = auth.get("type", "none")

            if path == "/token":
                if auth.get("username") and not self.basic_ok():
                    body = json.dumps({"details": "incorrect username or password"}).encode()
                    self.send(401, body, {"Content-Type": "application/json"})
                    return
                if query.get("service", [""])[0] != auth.get("service", ""):
                    self.send(400, b'{"details":"unknown service"}')
                    return
                body = json.dumps({"token": auth.get("token", ""),
                                   "expires_in": auth.get("expires_in", 300)}).encode()
                self.send(200, body, {"Content-Type": "application/json"})
                return

            if path.startswith("/v2/"):
                if kind == "bearer" and \
                        self.headers.get("Authorization", "") != "Bearer " + auth.get("token", ""):
                    m = re.match(r"^/v2/(.+)/(manifests|blobs)/", path)
                    scope = "repository:%s:pull" % m.group(1) if m else ""
                    challenge = 'Bearer realm="%s/token",service="%s"' % (
                        self.host(), auth.get("service", ""))
                    if scope:
                        challenge += ',scope="%s"' % scope
                    self.send_error_json(401, "UNAUTHORIZED", "authentication required",
                                         {"WWW-Authenticate": challenge})
                    return
                if kind == "basic" and not self.basic_ok():
                    self.send_error_json(401, "UNAUTHORIZED", "authentication required",
                                         {"WWW-Authenticate": 'Basic realm="fake"'})
                    return

            route = routes.get(path)
            if route is None:
                if "/manifests/" in path:
                    self.send_error_json(404, "MANIFEST_UNKNOWN", "manifest unknown")
                elif "/blobs/" in path:
                    self.send_error_json(404, "BLOB_UNKNOWN", "blob unknown to registry")
                else:
                    self.send_error_json(404, "NAME_UNKNOWN",
                                         "repository name not known to registry")
                return
            if "redirect" in route:
                target = route["redirect"]
                if target.startswith("/"):
                    target = self.host() + target
                self.send(307, b"", {"Location": target})
                return
            if "body_b64" in route:
                body = base64.b64decode(route["body_b64"])
            else:
                body = route.get("body", "").encode()
            headers = route.get("headers", {})
            status = route.get("status", 200)
            if route.get("stall"):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.flush()
                # Hold the connection without sending; the client gives up (bounded: 60 s).
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                    try:
                        self.connection.setblocking(False)
                        if self.connection.recv(1) == b"":
                            break
                    except BlockingIOError:
                        pass
                    except OSError:
                        break
                self.close_connection = True
                return
            if route.get("truncate"):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.send(status, body, headers)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
