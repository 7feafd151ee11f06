#!/usr/bin/env python3
"""A SigV4-verifying reverse proxy for the remote-write tests (tests/remote_write_auth.rs).

Every request is checked the way an AWS service checks it, with botocore's own SigV4
(botocore.auth.SigV4Auth) as the independent implementation: the signature is computed again
over exactly the headers the request lists in SignedHeaders, its X-Amz-Date and its body, with
the secret of its access key id, and compared with the one sent. The key's secret comes from
--key (static keys) or from the simulator's currently valid credentials (--credentials-url,
ecs-task-sim's /control/credentials), remembered once seen so that an expired key is told
apart from an unknown one. Also checked: the algorithm, the credential scope (date, --region,
--service, aws4_request), X-Amz-Date within 5 minutes, the body's SHA-256 against
X-Amz-Content-SHA256 when sent, and X-Amz-Security-Token against the key's session token.

A request that fails a check is answered 403 with AWS's words (an expired key: "The security
token included in the request is expired") and counted; a good one is forwarded to --upstream
(Prometheus' /api/v1/write) and its answer relayed. GET /stats answers the counts per access key
id as JSON. On start it prints "listening on http://127.0.0.1:<port>" to stdout.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
SKEW = datetime.timedelta(minutes=5)


class Verifier(SigV4Auth):
    """botocore's SigV4 over exactly the headers the request says it signed."""

    def __init__(self, credentials, service, region, signed):
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request):
        return self._signed


class Keys:
    """Access key id -> (secret, session token, expiration or None), static or the simulator's."""

    def __init__(self, static, credentials_url):
        self.known = dict(static)
        self.credentials_url = credentials_url
        self.lock = threading.Lock()

    def find(self, key_id):
        """(secret, token) of a valid key; raises Refused when unknown or expired."""
        now = datetime.datetime.now(datetime.timezone.utc)
        with self.lock:
            if self.credentials_url:
                with urllib.request.urlopen(self.credentials_url, timeout=5) as answer:
                    for c in json.load(answer):
                        expires = datetime.datetime.fromisoformat(
                            c["Expiration"].replace("Z", "+00:00")
                        )
                        self.known[c["AccessKeyId"]] = (
                            c["SecretAccessKey"],
                            c.get("Token"),
                            expires,
                        )
            found = self.known.get(key_id)
        if found is None:
            raise Refused("unknown", "The security token included in the request is invalid.")
        secret, token, expires = found
        if expires is not None and expires <= now:
            raise Refused("expired", "The security token included in the request is expired")
        return secret, token


class Refused(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_key = {}
        self.reasons = []

    def count(self, key_id, outcome, reason=None):
        with self.lock:
            counts = self.by_key.setdefault(key_id or "-", {})
            counts[outcome] = counts.get(outcome, 0) + 1
            if reason and len(self.reasons) < 20:
                self.reasons.append(f"{key_id}: {outcome}: {reason}")

    def json(self):
        with self.lock:
            return json.dumps({"by_key": self.by_key, "reasons": self.reasons})


def parse_authorization(value):
    """(key id, date, region, service, signed header names, signature) of an Authorization."""
    if not value or not value.startswith(ALGORITHM + " "):
        raise Refused("mismatch", f"not {ALGORITHM}: {value!r}")
    parts = {}
    for item in value[len(ALGORITHM) + 1 :].split(","):
        name, _, v = item.strip().partition("=")
        parts[name] = v
    try:
        scope = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        signature = parts["Signature"]
    except KeyError as e:
        raise Refused("mismatch", f"Authorization without {e}") from None
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise Refused("mismatch", f"bad credential scope {parts['Credential']!r}")
    return scope[0], scope[1], scope[2], scope[3], signed, signature


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sigv4-proxy"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/stats":
            self.answer(200, self.server.stats.json(), "application/json")
        else:
            self.answer(404, "not found\n")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        key_id = None
        try:
            key_id = self.verify(body)
        except Refused as refused:
            self.server.stats.count(key_id or self.key_id_of(), refused.kind, refused.message)
            self.answer(403, json.dumps({"message": refused.message}), "application/json")
            return
        status, answer = self.forward(body)
        self.server.stats.count(key_id, "accepted" if status < 300 else f"upstream {status}")
        self.answer(status, answer)

    def key_id_of(self):
        try:
            return parse_authorization(self.headers.get("Authorization"))[0]
        except Refused:
            return None

    def verify(self, body):
        """The request's access key id when its signature is AWS's; else raises Refused."""
        opts = self.server.opts
        key_id, date, region, service, signed, signature = parse_authorization(
            self.headers.get("Authorization")
        )
        amz_date = self.headers.get("X-Amz-Date", "")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc
            )
        except ValueError:
            raise Refused("mismatch", f"bad X-Amz-Date {amz_date!r}") from None
        if abs(datetime.datetime.now(datetime.timezone.utc) - when) > SKEW:
            raise Refused("mismatch", f"X-Amz-Date {amz_date} is not within 5 minutes")
        if (date, region, service) != (amz_date[:8], opts.region, opts.service):
            raise Refused("mismatch", f"credential scope {date}/{region}/{service}")
        if "host" not in signed or "x-amz-date" not in signed:
            raise Refused("mismatch", f"host or x-amz-date not signed: {signed}")
        sent_hash = self.headers.get("X-Amz-Content-SHA256")
        if sent_hash is not None and sent_hash != hashlib.sha256(body).hexdigest():
            raise Refused("mismatch", "X-Amz-Content-SHA256 is not the body's")
        secret, token = self.server.keys.find(key_id)
        if token and self.headers.get("X-Amz-Security-Token") != token:
            raise Refused("mismatch", "X-Amz-Security-Token is not the key's session token")

        headers = HTTPHeaders()
        for name in signed:
            values = self.headers.get_all(name)
            if not values:
                raise Refused("mismatch", f"signed header {name} not sent")
            for value in values:
                headers[name] = value
        request = AWSRequest(
            method=self.command, url="http://" + self.headers["Host"] + self.path, data=body
        )
        request.context["timestamp"] = amz_date
        verifier = Verifier(Credentials(key_id, secret, token), service, region, headers)
        canonical = verifier.canonical_request(request)
        expected = verifier.signature(verifier.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, signature):
            raise Refused(
                "mismatch",
                "The request signature we calculated does not match the signature you "
                f"provided. Canonical request: {canonical!r}",
            )
        return key_id

    def forward(self, body):
        names = ("Content-Encoding", "Content-Type", "X-Prometheus-Remote-Write-Version")
        headers = {n: self.headers[n] for n in names if self.headers.get(n)}
        request = urllib.request.Request(
            self.server.opts.upstream, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError as e:
            return 502, f"upstream: {e}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="URL requests are forwarded to")
    parser.add_argument("--region", required=True)
    parser.add_argument("--service", default="aps")
    parser.add_argument(
        "--key", action="append", default=[], help="ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]"
    )
    parser.add_argument("--credentials-url", help="the simulator's /control/credentials")
    opts = parser.parse_args()
    static = {}
    for key in opts.key:
        key_id, secret, *token = key.split(":", 2)
        static[key_id] = (secret, token[0] if token else None, None)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.opts = opts
    server.keys = Keys(static, opts.credentials_url)
    server.stats = Stats()
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
