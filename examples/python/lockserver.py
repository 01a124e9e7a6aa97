#!/usr/bin/env python3
"""A lock server of the design, in Python 3 with the standard library only.

It serves locksim's lock HTTP API (README, "The lock API") and keeps every
lock in etcd, which it reaches through etcd's JSON gateway (/v3/kv/txn,
/v3/lease/grant, /v3/watch, ...): no gRPC, no third-party package. It is a
reference for a class exercise and a correct implementation that
`locksim grade` passes.

    python3 lockserver.py --listen 127.0.0.1:7001 --etcd http://127.0.0.1:2379 --name ls-1

The keys it writes in etcd (its own layout; locksim does not read them):

    /pylocks/<resourceId>                  hex SHA-256 of the lock token, on the lock's lease
    /pylockinfo/<resourceId>               {"ownerId","ttl"}, same lease
    /pywaiters/<resourceId>#/<random>      a blocked acquire's place in the queue, on a lease of its own

How it stays correct:

  * A grant is ONE etcd transaction: it writes the lock only if the lock key
    does not exist and no older waiter is queued. Its revision is the fencing
    token (the lock key's create revision), so tokens increase grant by grant.
  * The lock lives on an etcd lease of the asked ttl: if the holder never
    releases, etcd deletes it. Expiry is etcd's clock, never this server's.
  * Release and renew compare the stored hash of the token in the same
    transaction that changes the lock: only the holder's token works.
  * A blocked acquire queues a waiter key; waiters are granted in the order of
    their keys' create revisions, across every lock server.
  * A write whose answer never came (timeout) is reported as
    outcome_unknown (504), never as a failure: it may have taken effect.
"""

import argparse
import base64
import hashlib
import http.client
import http.server
import json
import math
import re
import secrets
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from urllib.parse import unquote, urlparse

RESOURCE_ID = re.compile(r"^[A-Za-z0-9:._/-]{1,256}$")
MAX_BODY = 64 * 1024
MAX_TTL = 3600.0
MAX_TIMEOUT = 300.0

LOCKS = "/pylocks/"
INFO = "/pylockinfo/"
WAITERS = "/pywaiters/"


class Unavailable(Exception):
    """etcd did not take the request: nothing changed (503)."""


class Unknown(Exception):
    """A write got no answer: it may or may not have taken effect (504)."""


class Busy(Exception):
    """The lock is held (409 lock_busy)."""


class NotHolder(Exception):
    """The token does not hold the lock (409 not_holder)."""


class BadRequest(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


def prefix_end(p):
    """The end of the key range of every key starting with p."""
    return p[:-1] + chr(ord(p[-1]) + 1)


def sha256(s):
    return hashlib.sha256(s.encode()).hexdigest()


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


class Etcd:
    """A small client of etcd's JSON gateway over several endpoints.

    It sticks to the endpoint that last answered and moves on when one does
    not. A read may be retried on another endpoint; a write that was sent and
    got no answer is Unknown, because it may have been applied.
    """

    def __init__(self, endpoints, timeout):
        self.endpoints = [urlparse(e) for e in endpoints]
        self.timeout = timeout
        self.current = 0
        self.mu = threading.Lock()

    def _next(self, failed):
        with self.mu:
            if self.current == failed:
                self.current = (failed + 1) % len(self.endpoints)

    def call(self, path, body, write, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        last = "no endpoint"
        for _ in range(2 * len(self.endpoints)):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with self.mu:
                i = self.current
            ep = self.endpoints[i]
            # A read may go on to another member: give each a share of the time.
            attempt = left if write else min(left, max(self.timeout / 2, 0.5))
            conn = http.client.HTTPConnection(ep.hostname, ep.port, timeout=attempt)
            sent = False
            try:
                conn.connect()
                conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                sent = True
                resp = conn.getresponse()
                data = resp.read()
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError) as e:
                last = f"{ep.netloc}: {e}"
                self._next(i)
                if write and sent:
                    raise Unknown(f"etcd {path}: {last}")
                continue
            except (socket.timeout, TimeoutError, OSError, http.client.HTTPException) as e:
                last = f"{ep.netloc}: {e or type(e).__name__}"
                self._next(i)
                if write and sent:
                    raise Unknown(f"etcd {path}: {last}")
                continue
            finally:
                conn.close()
            try:
                answer = json.loads(data or b"{}")
            except ValueError:
                answer = {"message": data[:200].decode(errors="replace")}
            if resp.status == 200:
                return answer
            msg = answer.get("message") or answer.get("error") or str(resp.status)
            if "no leader" in msg or "too many requests" in msg or "not capable" in msg:
                last = f"{ep.netloc}: {msg}"
                self._next(i)
                continue  # proved not applied: another member may do
            if "lease not found" in msg:
                raise LeaseGone(msg)
            if write:
                raise Unknown(f"etcd {path}: {msg}")
            last = f"{ep.netloc}: {msg}"
            self._next(i)
        raise Unavailable(f"etcd {path}: {last}")

    # --- the calls this server makes ---

    def grant(self, ttl):
        """A new lease of ttl seconds: (id, granted ttl). A lease alone holds nothing."""
        try:
            r = self.call("/v3/lease/grant", {"TTL": str(ttl)}, write=False)
        except Unknown as e:
            raise Unavailable(str(e))
        return r["ID"], int(r["TTL"])

    def keepalive(self, lease):
        """Restart a lease's TTL; its granted TTL, or 0 when it is gone."""
        r = self.call("/v3/lease/keepalive", {"ID": lease}, write=False)
        return int(r.get("result", {}).get("TTL", 0))

    def revoke(self, lease):
        try:
            self.call("/v3/lease/revoke", {"ID": lease}, write=True)
        except (Unavailable, Unknown, LeaseGone):
            pass  # it expires anyway

    def txn(self, compare, success, failure=()):
        return self.call("/v3/kv/txn", {"compare": compare, "success": list(success), "failure": list(failure)}, write=True)

    def read(self, ops):
        """Reads in one linearizable txn."""
        return self.call("/v3/kv/txn", {"success": ops}, write=False)

    def watch(self, key, start_rev, timeout):
        """Wait (at most timeout) for a change of key from start_rev on."""
        with self.mu:
            ep = self.endpoints[self.current]
        conn = http.client.HTTPConnection(ep.hostname, ep.port, timeout=max(timeout, 0.01))
        try:
            conn.request("POST", "/v3/watch", json.dumps({"create_request": {"key": b64(key), "start_revision": str(start_rev)}}))
            resp = conn.getresponse()
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                line = resp.readline()
                if not line:
                    return
                msg = json.loads(line).get("result", {})
                if msg.get("events") or msg.get("canceled") or msg.get("compact_revision"):
                    return
        except (OSError, socket.timeout, TimeoutError, ValueError, http.client.HTTPException):
            return
        finally:
            conn.close()


class LeaseGone(Exception):
    """etcd says the lease does not exist (expired or revoked): nothing was applied."""


def put(key, value, lease=None):
    p = {"key": b64(key), "value": b64(value)}
    if lease:
        p["lease"] = lease
    return {"request_put": p}


def delete(key):
    return {"request_delete_range": {"key": b64(key)}}


def get(key, **kw):
    r = {"key": b64(key)}
    r.update(kw)
    return {"request_range": r}


def absent(key):
    return {"target": "CREATE", "key": b64(key), "create_revision": "0", "result": "EQUAL"}


def nobody_in(prefix):
    """True when no key starts with prefix."""
    return {"target": "CREATE", "key": b64(prefix), "range_end": b64(prefix_end(prefix)), "create_revision": "0", "result": "EQUAL"}


def nobody_before(prefix, rev):
    """True when every key starting with prefix was created at rev or later."""
    return {"target": "CREATE", "key": b64(prefix), "range_end": b64(prefix_end(prefix)), "create_revision": str(rev - 1), "result": "GREATER"}


def value_is(key, value):
    return {"target": "VALUE", "key": b64(key), "value": b64(value), "result": "EQUAL"}


def lease_is(key, lease):
    return {"target": "LEASE", "key": b64(key), "lease": lease, "result": "EQUAL"}


def created_at(key, rev):
    return {"target": "CREATE", "key": b64(key), "create_revision": str(rev), "result": "EQUAL"}


class Locks:
    """The lock logic: every decision is an etcd transaction."""

    def __init__(self, etcd):
        self.etcd = etcd

    def try_grant(self, rid, lease, ttl, token_hash, owner, waiter=None):
        """One grant attempt: the lock is written iff it is free and nobody is
        queued before us. Returns the fencing token (the txn's revision), or
        (None, revision) when it did not grant."""
        queue = WAITERS + rid + "#/"
        if waiter is None:
            compare = [absent(LOCKS + rid), nobody_in(queue)]
            then = []
        else:
            key, rev = waiter
            compare = [absent(LOCKS + rid), nobody_before(queue, rev), created_at(key, rev)]
            then = [delete(key)]
        info = json.dumps({"ownerId": owner, "ttl": ttl})
        r = self.etcd.txn(compare, [put(LOCKS + rid, token_hash, lease), put(INFO + rid, info, lease)] + then)
        rev = int(r["header"]["revision"])
        return (rev if r.get("succeeded") else None), rev

    def acquire(self, rid, ttl, timeout, owner):
        deadline = time.monotonic() + timeout
        secs = max(1, math.ceil(ttl))
        since = time.time()
        lease, granted = self.etcd.grant(secs)
        token = secrets.token_hex(20)
        h = sha256(token)
        try:
            fencing, rev = self.try_grant(rid, lease, granted, h, owner)
        except LeaseGone as e:
            self.etcd.revoke(lease)
            raise Unavailable(str(e))
        except (Unknown, Unavailable):
            self.etcd.revoke(lease)  # undoes a grant whose answer was lost
            raise
        if fencing:
            return token, fencing, since + granted, granted
        if timeout <= 0:
            self.etcd.revoke(lease)
            raise Busy()
        return self.wait(rid, secs, lease, token, h, owner, deadline, rev)

    def wait(self, rid, secs, lease, token, h, owner, deadline, rev):
        """Queue behind the holder and the older waiters, and take the lock
        when it is our turn, until the deadline."""
        wkey = WAITERS + rid + "#/" + secrets.token_hex(8)
        wlease = None
        done = False
        try:
            wlease, _ = self.etcd.grant(max(1, math.ceil(deadline - time.monotonic())) + 2)
            r = self.etcd.txn([], [put(wkey, owner, wlease)])
            myrev = int(r["header"]["revision"])
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Busy()
                # Restart the lock's lease so that its ttl counts from the grant.
                since = time.time()
                granted = self.etcd.keepalive(lease)
                if granted == 0:  # it expired while we waited
                    lease, granted = self.etcd.grant(secs)
                try:
                    fencing, rev = self.try_grant(rid, lease, granted, h, owner, (wkey, myrev))
                except LeaseGone:
                    continue
                if fencing:
                    done = True
                    return token, fencing, since + granted, granted
                self.etcd.watch(LOCKS + rid, rev + 1, min(left, 0.5))
        except LeaseGone as e:
            raise Unavailable(str(e))
        finally:
            if not done:
                try:
                    self.etcd.txn([], [delete(wkey)])
                except (Unknown, Unavailable, LeaseGone):
                    pass  # the waiter lease ends it soon
                self.etcd.revoke(lease)  # also undoes a grant whose answer was lost
            if wlease:
                self.etcd.revoke(wlease)

    def release(self, rid, token):
        r = self.etcd.txn([value_is(LOCKS + rid, sha256(token))], [get(LOCKS + rid), delete(LOCKS + rid), delete(INFO + rid)])
        if not r.get("succeeded"):
            raise NotHolder()
        kvs = r["responses"][0]["response_range"].get("kvs", [])
        if kvs and kvs[0].get("lease"):
            self.etcd.revoke(kvs[0]["lease"])

    def renew(self, rid, token, ttl):
        h = sha256(token)
        r = self.etcd.read([get(LOCKS + rid), get(INFO + rid)])
        kvs = r["responses"][0]["response_range"].get("kvs", [])
        if not kvs or unb64(kvs[0].get("value", "")) != h:
            raise NotHolder()
        old, fencing = kvs[0].get("lease", "0"), int(kvs[0]["create_revision"])
        info = r["responses"][1]["response_range"].get("kvs", [])
        owner = json.loads(unb64(info[0]["value"])).get("ownerId", "") if info else ""
        since = time.time()
        live = self.etcd.call("/v3/lease/timetolive", {"ID": old}, write=False)
        left = int(live.get("TTL", 0))
        if not ttl:
            ttl = int(live.get("grantedTTL", 1))
        if 0 < math.ceil(ttl) <= left:
            # A renew never shortens a lock: the lease already lasts long enough.
            return token, fencing, since + left, left
        lease, granted = self.etcd.grant(max(1, math.ceil(ttl)))
        try:
            r = self.etcd.txn([value_is(LOCKS + rid, h), lease_is(LOCKS + rid, old)],
                              [put(LOCKS + rid, h, lease), put(INFO + rid, json.dumps({"ownerId": owner, "ttl": granted}), lease)])
        except LeaseGone as e:
            raise Unavailable(str(e))
        except (Unknown, Unavailable):
            self.etcd.revoke(lease)
            raise
        if not r.get("succeeded"):
            self.etcd.revoke(lease)
            raise NotHolder()
        self.etcd.revoke(old)
        return token, fencing, since + granted, granted

    def lookup(self, rid):
        r = self.etcd.read([get(LOCKS + rid), get(INFO + rid)])
        kvs = r["responses"][0]["response_range"].get("kvs", [])
        out = {"resourceId": rid, "held": False}
        if not kvs:
            return out
        info = r["responses"][1]["response_range"].get("kvs", [])
        owner = json.loads(unb64(info[0]["value"])).get("ownerId", "") if info else ""
        since = time.time()
        ttl = int(self.etcd.call("/v3/lease/timetolive", {"ID": kvs[0].get("lease", "0")}, write=False).get("TTL", 0))
        out.update(held=True, ownerId=owner, fencingToken=int(kvs[0]["create_revision"]), expiresAt=rfc3339(since + max(ttl, 0)))
        return out

    def healthy(self):
        self.etcd.call("/v3/kv/range", {"key": b64("/health"), "count_only": True}, write=False, timeout=1.0)


# --- HTTP ---

ERRORS = {
    Busy: (409, "lock_busy", "lock already held by another client"),
    NotHolder: (409, "not_holder", "the lock token does not hold this lock (expired, released, or someone else's)"),
    Unavailable: (503, "unavailable", "etcd is unavailable; the request did not take effect"),
    LeaseGone: (503, "unavailable", "etcd is unavailable; the request did not take effect"),
    Unknown: (504, "outcome_unknown", "etcd did not answer in time; the request may or may not have taken effect"),
}

FIELDS = {
    "/locks/acquire": {"resourceId": str, "ttl": float, "timeout": float, "clientId": str},
    "/locks/release": {"resourceId": str, "lockToken": str},
    "/locks/renew": {"resourceId": str, "lockToken": str, "ttl": float},
}
REQUIRED = {
    "/locks/acquire": ["resourceId", "ttl"],
    "/locks/release": ["resourceId", "lockToken"],
    "/locks/renew": ["resourceId", "lockToken"],
}


def parse(path, body):
    """Validate a POST body like locksim's own server: the same codes."""
    try:
        obj = json.loads(body)
    except ValueError:
        raise BadRequest("malformed_json", "request body is not valid JSON")
    if not isinstance(obj, dict):
        raise BadRequest("invalid_type", "request body must be a JSON object")
    fields = FIELDS[path]
    for k, v in obj.items():
        if k not in fields:
            raise BadRequest("unknown_field", f'unknown field "{k}"')
        want = fields[k]
        ok = isinstance(v, str) if want is str else (isinstance(v, (int, float)) and not isinstance(v, bool))
        if v is not None and not ok:
            raise BadRequest("invalid_type", f'field "{k}" must be a JSON {"string" if want is str else "number"}')
    for k in REQUIRED[path]:
        if obj.get(k) is None or (k == "lockToken" and obj.get(k) == ""):
            raise BadRequest("missing_field", f'missing required field "{k}"')
    if not RESOURCE_ID.match(obj["resourceId"]):
        raise BadRequest("invalid_resource_id", "resourceId must be 1-256 bytes of [A-Za-z0-9:._/-]")
    ttl = obj.get("ttl")
    if ttl is not None and not (0 < ttl <= MAX_TTL):
        raise BadRequest("invalid_ttl", f"ttl must be in (0, {MAX_TTL:g}] seconds")
    timeout = obj.get("timeout")
    if timeout is not None and not (0 <= timeout <= MAX_TIMEOUT):
        raise BadRequest("invalid_timeout", f"timeout must be in [0, {MAX_TIMEOUT:g}] seconds")
    return obj


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    locks = None  # set by main
    name = "lockserver"

    def log_message(self, fmt, *args):  # quiet: errors are logged where they happen
        pass

    def parse_request(self):
        self.body_read = False  # one connection carries many requests
        return super().parse_request()

    def send(self, status, obj, headers=()):
        body = (json.dumps(obj) + "\n").encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left: nobody to answer

    def fail(self, status, code, msg, headers=()):
        if status in (404, 405, 413, 415):
            self.discard_body()
        if status == 503:
            headers = list(headers) + [("Retry-After", "1")]
        if status >= 500:
            print(f"{self.name}: {self.command} {self.path}: {status} {code}: {msg}", file=sys.stderr, flush=True)
        self.send(status, {"success": False, "error": msg, "code": code}, headers)

    def run(self, f):
        try:
            return f()
        except BadRequest as e:
            self.fail(400, e.code, str(e))
        except tuple(ERRORS) as e:
            status, code, msg = ERRORS[type(e)]
            detail = str(e)
            self.fail(status, code, msg + (f" ({detail})" if detail else ""))

    def discard_body(self, limit=4 << 20):
        """Read what is left of a refused request's body (so that the client
        reads the answer instead of a reset), then end the connection."""
        self.close_connection = True
        if getattr(self, "body_read", False):
            return
        self.body_read = True
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                while limit > 0:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return
                    self.rfile.read(size)
                    self.rfile.readline()
                    limit -= size
                return
            n = int(self.headers.get("Content-Length") or 0)
            if n <= limit:
                self.rfile.read(n)
        except (OSError, ValueError):
            pass

    def read_body(self):
        """The body, at most MAX_BODY bytes (also when sent chunked); None after a 413."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY:
                    self.fail(413, "body_too_large", f"request body is over {MAX_BODY} bytes")
                    return None
            self.body_read = True
            return data
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.fail(413, "body_too_large", f"request body is over {MAX_BODY} bytes")
            return None
        self.body_read = True
        return self.rfile.read(n)

    def do_GET(self):
        path = urlparse(self.path).path
        if path == "/health":
            return self.health()
        if path.startswith("/locks/"):
            rid = unquote(path[len("/locks/"):])
            if not RESOURCE_ID.match(rid):
                return self.fail(400, "invalid_resource_id", "resourceId must be 1-256 bytes of [A-Za-z0-9:._/-]")
            return self.run(lambda: self.send(200, self.locks.lookup(rid)))
        self.not_found(path)

    do_HEAD = do_GET

    def do_POST(self):
        path = urlparse(self.path).path
        if path not in FIELDS:
            if path == "/health" or path.startswith("/locks/"):
                return self.not_allowed("GET, HEAD")
            return self.not_found(path)
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self.close_connection = True
            return self.fail(415, "unsupported_media_type", "Content-Type must be application/json")
        body = self.read_body()
        if body is None:
            return
        self.run(lambda: self.serve(path, parse(path, body)))

    def serve(self, path, req):
        rid = req["resourceId"]
        if path == "/locks/release":
            self.locks.release(rid, req["lockToken"])
            return self.send(200, {"success": True})
        if path == "/locks/acquire":
            owner = req.get("clientId") or "anonymous"
            g = self.locks.acquire(rid, req["ttl"], req.get("timeout") or 0, owner)
        else:
            g = self.locks.renew(rid, req["lockToken"], req.get("ttl"))
        token, fencing, expires, ttl = g
        self.send(200, {"success": True, "lockToken": token, "fencingToken": fencing, "expiresAt": rfc3339(expires), "ttl": ttl})

    def other(self):
        path = urlparse(self.path).path
        if path in FIELDS:
            return self.not_allowed("GET, HEAD, POST")
        if path == "/health" or path.startswith("/locks/"):
            return self.not_allowed("GET, HEAD")
        self.not_found(path)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = other

    def not_allowed(self, allow):
        self.fail(405, "method_not_allowed", f"method {self.command} not allowed (allowed: {allow})", [("Allow", allow)])

    def not_found(self, path):
        self.fail(404, "not_found", f"no such endpoint: {self.command} {path}")

    def health(self):
        try:
            self.locks.healthy()
        except (Unavailable, Unknown, LeaseGone) as e:
            return self.send(503, {"status": "unavailable", "name": self.name, "code": "unavailable", "error": str(e)},
                             [("Retry-After", "1")])
        self.send(200, {"status": "ok", "name": self.name})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None, locks=Locks):
    ap = argparse.ArgumentParser(description="A lock server of the design over etcd's JSON gateway.")
    ap.add_argument("--listen", required=True, help="host:port to serve on")
    ap.add_argument("--etcd", required=True, help="comma-separated etcd client URLs")
    ap.add_argument("--name", default="lockserver", help="name in logs and in /health")
    ap.add_argument("--etcd-timeout", type=float, default=2.0, help="bound of each etcd call, in seconds")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    Handler.locks = locks(Etcd([e for e in args.etcd.split(",") if e], args.etcd_timeout))
    Handler.name = args.name
    srv = Server((host or "127.0.0.1", int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print(f"listening on http://{host or '127.0.0.1'}:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
