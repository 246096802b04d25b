#!/usr/bin/env python3
# Copied from the shared benchmark tools (shared/tools/bench/regbench.py, 2026-11-28) so that
# `python -m bench` stands alone; adapted only where marked "Tollgate:" (and long lines wrapped
# for the project's ruff rules).
# Tollgate: the copy keeps the source's unannotated functions so that it stays comparable,
# line by line, with the shared original; hence no ANN rules for this one file.
# ruff: noqa: ANN001, ANN201
"""regbench - side-by-side benchmark for OCI / Docker distribution registries.

Self-contained: Python 3.11 stdlib only; external load generators `wrk`
(GET request/s + latency) and `hey` (HEAD, because wrk 4.1 hangs on HEAD
responses that carry a Content-Length; also the fallback when wrk is absent).

  regbench.py --registry dist=http://127.0.0.1:5010 --pid dist=PID1 \
              --registry new=http://127.0.0.1:5011  --pid new=PID2 \
              [--user U --password P] [--rounds 3] [--duration 3] [--json out.json]

The FIRST registry is the baseline of every ratio.  Per registry, setup (not
timed) pushes: a 64 MiB blob (pull tests, verified by digest on the way back),
repo <prefix>/tags with 1000 tags of one manifest, <prefix>/cat-NNNN repos for
the catalog, and a config blob for the small-push test.

Metrics (each sub-benchmark bounded by --duration, a fixed count, or a timeout):
  push.blob_monolithic      POST + PUT ?digest= of fresh random 64 MiB blobs, MB/s (1e6 B/s)
  push.blob_chunked         POST, PATCH 8 MiB chunks (Content-Range), PUT ?digest=, MB/s
  push.small_blob+manifest  200 x (4 KiB blob POST+PUT, manifest PUT) at concurrency 32, ops/s
  pull.blob_1stream / pull.blob_8streams   GET of the 64 MiB blob (redirects followed), MB/s
  pull.manifest_by_{tag,digest}.cN         wrk, N in --conc (1,16,64), req/s
  pull.blob_head.c16, pull.tags_list_1000.c16, pull.catalog_n100.c16   req/s
  latency.manifest_by_{tag,digest}.c16.{p50,p99}   ms, from the wrk run at --latency-conc
  mixed.manifest_by_tag.c16  Tollgate: manifest GETs by tag (wrk, --latency-conc) while
                            --mixed-streams pulls of the 64 MiB blob run back to back, req/s;
                            with latency.mixed.manifest_by_tag.c16.{p50,p99}
  memory.*                  (with --pid) peak RSS sampled every 50 ms from /proc (process
                            tree summed), VmHWM, RSS at end
  cpu.*                     (with --pid) server CPU seconds per GiB / 1k ops / 1k requests;
                            far less sensitive to a noisy machine than throughput

Fairness on a shared machine: inside every round the registries run back to back
for each sub-benchmark, and the order rotates per round (A B, B A, A B ...).
Tables show each registry's median over rounds, the ratio of medians, and the
"paired" ratio (median over rounds of the same-round ratio).  With --pid the
harness also measures the CPU that OTHER processes burnt during each sample
(/proc/stat minus server minus harness+wrk/hey); a sample above
--noise-threshold % of all CPUs is re-measured (--noise-retries, after
--noise-pause s) and the least disturbed attempt is kept; rounds that stayed
noisy are listed.

Auth: --user/--password.  401 with a Basic challenge -> basic auth on every
request.  401 with a Bearer challenge -> token dance (GET realm?service=&scope=
with basic auth, tokens cached per scope, refreshed on 401/expiry); wrk/hey get
the Authorization header that a preflight request proved to work.

Exit status: 0, or 1 if any sub-benchmark failed (the failure is reported and
the run goes on).  --only push,manifest_by_tag.c16,... runs a subset.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed

MiB = 1024 * 1024
MB = 1_000_000

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT_MANIFESTS = ", ".join([
    OCI_MANIFEST, DOCKER_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


class RegistryError(Exception):
    pass


def sha256_digest(data) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------

def parse_challenge(value: str):
    """Parse a WWW-Authenticate header -> (scheme, {param: value})."""
    if not value:
        return None, {}
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    params = {}
    pattern = r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))'
    for m in re.finditer(pattern, rest):
        params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return scheme.lower(), params


class Auth:
    """Holds the auth scheme of one registry and a per-scope token cache."""

    def __init__(self, user, password, insecure=False, timeout=30):
        self.user = user
        self.password = password
        self.insecure = insecure
        self.timeout = timeout
        self.scheme = None          # None | "basic" | "bearer"
        self.realm = None
        self.service = None
        self.tokens = {}            # scope -> (header, expiry_monotonic)
        self.lock = threading.Lock()
        self.token_fetches = 0

    def basic_header(self):
        if self.user is None:
            raise RegistryError("registry wants credentials: pass --user/--password")
        raw = f"{self.user}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def on_challenge(self, www_authenticate: str):
        scheme, params = parse_challenge(www_authenticate)
        if scheme == "basic":
            self.scheme = "basic"
        elif scheme == "bearer":
            self.scheme = "bearer"
            self.realm = params.get("realm")
            self.service = params.get("service")
            if not self.realm:
                raise RegistryError(f"Bearer challenge without realm: {www_authenticate!r}")
        else:
            raise RegistryError(f"unsupported auth challenge: {www_authenticate!r}")
        return params.get("scope")

    def header(self, scope, min_valid=0.0, force=False):
        """Authorization header value for `scope` (None = no auth needed)."""
        if self.scheme is None:
            return None
        if self.scheme == "basic":
            return self.basic_header()
        key = scope or ""
        with self.lock:
            cached = self.tokens.get(key)
            if cached and not force and cached[1] - time.monotonic() > min_valid:
                return cached[0]
            hdr, exp = self._fetch_token(scope)
            self.tokens[key] = (hdr, exp)
            return hdr

    def _fetch_token(self, scope):
        q = []
        if self.service:
            q.append(("service", self.service))
        if scope:
            for s in scope.split(" "):
                if s:
                    q.append(("scope", s))
        url = self.realm + ("&" if "?" in self.realm else "?") + urllib.parse.urlencode(q)
        u = urllib.parse.urlsplit(url)
        conn = make_conn(u.scheme, u.netloc, self.timeout, self.insecure)
        headers = {"Accept": "application/json"}
        if self.user is not None:
            headers["Authorization"] = self.basic_header()
        path = u.path + ("?" + u.query if u.query else "")
        try:
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            body = r.read()
        finally:
            conn.close()
        self.token_fetches += 1
        if r.status != 200:
            raise RegistryError(f"token request to {self.realm} failed: {r.status} {body[:200]!r}")
        doc = json.loads(body)
        tok = doc.get("token") or doc.get("access_token")
        if not tok:
            raise RegistryError(f"token response without token: {body[:200]!r}")
        expires_in = float(doc.get("expires_in") or 60)
        return "Bearer " + tok, time.monotonic() + expires_in - 2


def make_conn(scheme, netloc, timeout, insecure):
    if scheme == "https":
        ctx = ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(netloc, timeout=timeout, context=ctx)
    return http.client.HTTPConnection(netloc, timeout=timeout)


def scope_for(path: str, write: bool) -> str | None:
    if path.startswith("/v2/_catalog"):
        return "registry:catalog:*"
    path = path.split("?", 1)[0]
    m = re.match(r"^/v2/(.+)/(manifests/[^/]+|blobs/uploads/.*|blobs/[^/]+|tags/list)$", path)
    if m:
        return f"repository:{m.group(1)}:{'pull,push' if write else 'pull'}"
    return None


# --------------------------------------------------------------------------
# Registry client
# --------------------------------------------------------------------------

class Response:
    __slots__ = ("status", "headers", "body", "authorization")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.authorization = None  # Authorization header that was sent

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)


class Registry:
    def __init__(self, name, url, auth: Auth, pids, timeout=60, insecure=False):
        self.name = name
        u = urllib.parse.urlsplit(url.rstrip("/"))
        if u.scheme not in ("http", "https"):
            raise SystemExit(f"bad registry url {url!r}")
        self.scheme = u.scheme
        self.netloc = u.netloc
        self.base = f"{u.scheme}://{u.netloc}"
        self.prefix = u.path  # normally ""
        self.auth = auth
        self.pids = pids
        self.timeout = timeout
        self.insecure = insecure
        self._tl = threading.local()
        self.requests = 0

    # -- connections -------------------------------------------------------
    def _conn(self, netloc=None):
        netloc = netloc or self.netloc
        conns = getattr(self._tl, "conns", None)
        if conns is None:
            conns = self._tl.conns = {}
        c = conns.get(netloc)
        if c is None:
            c = conns[netloc] = make_conn(self.scheme, netloc, self.timeout, self.insecure)
        return c

    def _drop_conn(self, netloc=None):
        netloc = netloc or self.netloc
        conns = getattr(self._tl, "conns", {})
        c = conns.pop(netloc, None)
        if c is not None:
            c.close()

    def close_thread_conns(self):
        for c in getattr(self._tl, "conns", {}).values():
            c.close()
        self._tl.conns = {}

    def url_to_target(self, location: str):
        """Resolve a Location header to (netloc, path?query)."""
        full = urllib.parse.urljoin(self.base + "/", location)
        u = urllib.parse.urlsplit(full)
        target = u.path + ("?" + u.query if u.query else "")
        return u.netloc, target

    # -- raw request -------------------------------------------------------
    def _send(self, conn, method, target, headers, body, sink=None):
        """One request on `conn`.  body: None | bytes | list of buffers."""
        if body is None or isinstance(body, (bytes, bytearray)) and len(body) <= 256 * 1024:
            conn.request(method, target, body=body, headers=headers)
        else:
            parts = [body] if isinstance(body, (bytes, bytearray, memoryview)) else list(body)
            total = sum(len(p) for p in parts)
            conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            if not any(k.lower() == "content-length" for k in headers):
                conn.putheader("Content-Length", str(total))
            conn.endheaders()
            for p in parts:
                conn.send(p)
        r = conn.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if sink is not None and 200 <= r.status < 300 and method != "HEAD":
            # read into the caller's buffer; wrap around when it is full
            n = off = 0
            mv = memoryview(sink)
            size = len(mv)
            while True:
                if off >= size:
                    off = 0
                k = r.readinto(mv[off:])
                if not k:
                    break
                n += k
                off += k
            r.close()
            return Response(r.status, hdrs, n)
        data = r.read()
        return Response(r.status, hdrs, data)

    def request(self, method, path, body=None, headers=None, write=None, netloc=None,
                sink=None, ok=None, auth=True, min_valid=0.0):
        """Authenticated request with retry on stale keep-alive and on 401."""
        if write is None:
            write = method not in ("GET", "HEAD")
        target = path if path.startswith("/") else "/" + path
        hdrs = dict(headers or {})
        scope = scope_for(urllib.parse.urlsplit(target).path[len(self.prefix):] if self.prefix else
                          urllib.parse.urlsplit(target).path, write)
        if auth:
            ah = self.auth.header(scope, min_valid=min_valid)
            if ah:
                hdrs["Authorization"] = ah
        if self.prefix and netloc is None and not target.startswith(self.prefix + "/"):
            target = self.prefix + target
        for attempt in range(3):
            conn = self._conn(netloc)
            try:
                resp = self._send(conn, method, target, hdrs, body, sink)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady,
                    http.client.BadStatusLine) as e:
                self._drop_conn(netloc)
                if attempt == 2:
                    raise RegistryError(f"{method} {target}: {e!r}") from e
                continue
            except Exception:
                self._drop_conn(netloc)
                raise
            self.requests += 1
            if resp.header("connection", "").lower() == "close":
                self._drop_conn(netloc)
            if resp.status == 401 and auth and attempt < 2:
                ch_scope = self.auth.on_challenge(resp.header("www-authenticate", ""))
                ah = self.auth.header(ch_scope or scope, force=True)
                if ah:
                    hdrs["Authorization"] = ah
                continue
            break
        resp.authorization = hdrs.get("Authorization")
        if ok is not None and resp.status not in ok:
            body_txt = resp.body[:300] if isinstance(resp.body, (bytes, bytearray)) else resp.body
            raise RegistryError(f"{self.name}: {method} {target} -> {resp.status} {body_txt!r}")
        return resp

    # -- API helpers -------------------------------------------------------
    def ping(self):
        r = self.request("GET", "/v2/", auth=False)
        if r.status == 401:
            self.auth.on_challenge(r.header("www-authenticate", ""))
            r = self.request("GET", "/v2/", ok=(200,))
        elif r.status != 200:
            raise RegistryError(f"{self.name}: GET /v2/ -> {r.status}")
        return r

    def start_upload(self, repo):
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"",
                         headers={"Content-Length": "0"}, ok=(202,))
        loc = r.header("location")
        if not loc:
            raise RegistryError(f"{self.name}: upload POST without Location")
        return loc

    def _with_digest(self, location, digest):
        netloc, target = self.url_to_target(location)
        sep = "&" if "?" in target else "?"
        return netloc, f"{target}{sep}digest={urllib.parse.quote(digest)}"

    def push_blob_monolithic(self, repo, parts, size, digest):
        loc = self.start_upload(repo)
        netloc, target = self._with_digest(loc, digest)
        self.request("PUT", target, body=parts, write=True,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(size)},
                     netloc=None if netloc == self.netloc else netloc, ok=(201,))

    def push_blob_chunked(self, repo, data: memoryview, chunk, digest):
        loc = self.start_upload(repo)
        off = 0
        size = len(data)
        while off < size:
            piece = data[off:off + chunk]
            netloc, target = self.url_to_target(loc)
            r = self.request("PATCH", target, body=[piece], write=True,
                             headers={"Content-Type": "application/octet-stream",
                                      "Content-Length": str(len(piece)),
                                      "Content-Range": f"{off}-{off + len(piece) - 1}"},
                             netloc=None if netloc == self.netloc else netloc, ok=(202,))
            loc = r.header("location") or loc
            off += len(piece)
        netloc, target = self._with_digest(loc, digest)
        self.request("PUT", target, body=b"", write=True,
                     headers={"Content-Length": "0"},
                     netloc=None if netloc == self.netloc else netloc, ok=(201,))

    def put_manifest(self, repo, ref, body: bytes, media_type):
        r = self.request("PUT", f"/v2/{repo}/manifests/{ref}", body=body,
                         headers={"Content-Type": media_type}, ok=(201,))
        return r.header("docker-content-digest")

    def blob_exists(self, repo, digest):
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200

    def download_blob(self, repo, digest, buf):
        """GET a blob into buf (reused), following redirects.  Returns bytes read."""
        path = f"/v2/{repo}/blobs/{digest}"
        r = self.request("GET", path, sink=buf, ok=(200, 307, 302, 301, 303, 308))
        hops = 0
        while r.status in (301, 302, 303, 307, 308):
            hops += 1
            if hops > 5:
                raise RegistryError("too many redirects")
            loc = r.header("location")
            u = urllib.parse.urlsplit(urllib.parse.urljoin(self.base + path, loc))
            conn = make_conn(u.scheme, u.netloc, self.timeout, self.insecure)
            try:
                target = u.path + ("?" + u.query if u.query else "")
                r = self._send(conn, "GET", target, {}, None, sink=buf)
            finally:
                conn.close()
        if r.status != 200:
            raise RegistryError(f"{self.name}: GET {path} -> {r.status}")
        return r.body


# --------------------------------------------------------------------------
# Process monitor (RSS + CPU of the registry process, from /proc)
# --------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_tree(pids):
    """pids plus all their descendants."""
    children = {}
    try:
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2:].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError):
                pass
    except OSError:
        return list(pids)
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def proc_rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def proc_hwm_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def host_cpu():
    """(user+nice+system, irq+softirq, steal) seconds of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        return ((v[0] + v[1] + v[2]) / CLK_TCK, (v[5] + v[6]) / CLK_TCK,
                (v[7] if len(v) > 7 else 0) / CLK_TCK)
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0, 0.0


class ProcMonitor:
    """Samples RSS (sum over the process tree) every `interval` seconds."""

    def __init__(self, pids_by_reg, interval=0.05):
        self.pids_by_reg = {k: v for k, v in pids_by_reg.items() if v}
        self.interval = interval
        self.trees = {k: proc_tree(v) for k, v in self.pids_by_reg.items()}
        self.peak = {k: 0 for k in self.pids_by_reg}       # since last reset
        self.peak_all = {k: 0 for k in self.pids_by_reg}   # whole run
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.thread = None
        if self.pids_by_reg:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _run(self):
        n = 0
        while not self.stop_ev.wait(self.interval):
            n += 1
            if n % 40 == 0:  # refresh the tree every ~2 s (forked workers)
                self.trees = {k: proc_tree(v) for k, v in self.pids_by_reg.items()}
            self.sample()

    def sample(self):
        for k, tree in self.trees.items():
            rss = sum(proc_rss_bytes(p) for p in tree)
            with self.lock:
                if rss > self.peak[k]:
                    self.peak[k] = rss
                if rss > self.peak_all[k]:
                    self.peak_all[k] = rss

    def reset(self, reg):
        if reg in self.peak:
            self.sample()
            with self.lock:
                self.peak[reg] = 0
            self.sample()

    def take_peak(self, reg):
        if reg not in self.peak:
            return None
        self.sample()
        with self.lock:
            return self.peak[reg]

    def cpu(self, reg):
        if reg not in self.trees:
            return None
        return sum(proc_cpu_s(p) for p in self.trees[reg])

    def hwm(self, reg):
        if reg not in self.trees:
            return None
        return sum(proc_hwm_bytes(p) for p in self.trees[reg])

    def current(self, reg):
        if reg not in self.trees:
            return None
        return sum(proc_rss_bytes(p) for p in self.trees[reg])

    def stop(self):
        self.stop_ev.set()
        if self.thread:
            self.thread.join(timeout=2)


# --------------------------------------------------------------------------
# External load generators (wrk preferred, hey fallback)
# --------------------------------------------------------------------------

WRK_LUA = r"""
wrk.method = "%(method)s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RBJSON {"requests":%%.0f,"duration_us":%%.0f,"bytes":%%.0f,' ..
    '"err_connect":%%.0f,"err_read":%%.0f,"err_write":%%.0f,' ..
    '"err_status":%%.0f,"err_timeout":%%.0f,' ..
    '"lat_mean_us":%%.1f,"lat_max_us":%%.0f,"p50_us":%%.0f,"p90_us":%%.0f,"p99_us":%%.0f,"p999_us":%%.0f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


class LoadGen:
    def __init__(self, tool, workdir, wrk_threads=2):
        self.tool = tool
        self.workdir = workdir
        self.wrk_threads = wrk_threads
        self.scripts = {}

    def _script(self, method):
        if method not in self.scripts:
            p = os.path.join(self.workdir, f"wrk_{method}.lua")
            with open(p, "w") as f:
                f.write(WRK_LUA % {"method": method})
            self.scripts[method] = p
        return self.scripts[method]

    def run(self, url, method, conc, duration, headers):
        # wrk 4.1 waits for a body after a HEAD response that carries a
        # Content-Length (hangs until timeout), so HEAD always goes through hey.
        if self.tool == "wrk" and not (method == "HEAD" and shutil.which("hey")):
            return self._wrk(url, method, conc, duration, headers)
        return self._hey(url, method, conc, duration, headers)

    def _wrk(self, url, method, conc, duration, headers):
        t = max(1, min(self.wrk_threads, conc))
        cmd = ["wrk", f"-t{t}", f"-c{conc}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
               "-s", self._script(method)]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(url)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
        m = re.search(r"^RBJSON (\{.*\})$", p.stdout, re.M)
        if p.returncode != 0 or not m:
            raise RegistryError(
                f"wrk failed rc={p.returncode}: {p.stdout[-400:]} {p.stderr[-400:]}")
        d = json.loads(m.group(1))
        secs = d["duration_us"] / 1e6
        errors = (d["err_connect"] + d["err_read"] + d["err_write"] + d["err_status"]
                  + d["err_timeout"])
        return {
            "tool": "wrk", "requests": d["requests"], "seconds": secs,
            "rps": (d["requests"] - d["err_status"]) / secs if secs else 0.0,
            "errors": errors, "err_status": d["err_status"],
            "p50_ms": d["p50_us"] / 1000, "p90_ms": d["p90_us"] / 1000,
            "p99_ms": d["p99_us"] / 1000, "p999_ms": d["p999_us"] / 1000,
            "mean_ms": d["lat_mean_us"] / 1000, "max_ms": d["lat_max_us"] / 1000,
            "bytes": d["bytes"],
        }

    def _hey(self, url, method, conc, duration, headers):
        cmd = ["hey", "-z", f"{duration}s", "-c", str(conc), "-m", method, "-t", "10"]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(url)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        out = p.stdout
        if p.returncode != 0:
            raise RegistryError(f"hey failed rc={p.returncode}: {p.stderr[-400:]}")

        def grab(rx, conv=float, default=None):
            m = re.search(rx, out, re.M)
            return conv(m.group(1)) if m else default

        total = grab(r"^\s*Total:\s+([\d.]+) secs")
        codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
        ok = sum(n for c, n in codes.items() if c < 400)
        bad = sum(n for c, n in codes.items() if c >= 400)
        errs = 0
        m_err = re.search(r"Error distribution:(.*)", out, re.S)
        if m_err:
            errs = sum(int(n) for n in re.findall(r"\[(\d+)\]", m_err.group(1)))
        pct = {int(p): float(s) * 1000
               for p, s in re.findall(r"^\s*(\d+)%+ in ([\d.]+) secs", out, re.M)}
        return {
            "tool": "hey", "requests": ok + bad, "seconds": total,
            "rps": ok / total if total else 0.0, "errors": bad + errs, "err_status": bad,
            "p50_ms": pct.get(50), "p90_ms": pct.get(90), "p99_ms": pct.get(99), "p999_ms": None,
            "mean_ms": (grab(r"^\s*Average:\s+([\d.]+) secs") or 0) * 1000,
            "max_ms": (grab(r"^\s*Slowest:\s+([\d.]+) secs") or 0) * 1000,
            "bytes": None,
        }


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

def make_manifest(kind, config_digest, config_size, layers):
    if kind == "oci":
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
             "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers]}
        mt = OCI_MANIFEST
    else:
        m = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
             "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest, "size": config_size},
             "layers": [{"mediaType": DOCKER_LAYER, "digest": d, "size": s} for d, s in layers]}
        mt = DOCKER_MANIFEST
    return json.dumps(m, indent=3).encode(), mt


def make_config(tag):
    return json.dumps({"architecture": "amd64", "os": "linux",
                       "config": {"Labels": {"regbench": tag}},
                       "rootfs": {"type": "layers", "diff_ids": []}}).encode()


class Fixture:
    """What setup() pushed into one registry."""
    big_digest = None
    big_size = 0
    tag_manifest_digest = None
    small_config = None  # (digest, size)


# --------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------

def gen_blob(size):
    data = os.urandom(size)
    return data, sha256_digest(data)


class Bench:
    def __init__(self, args, registries, monitor, loadgen):
        self.a = args
        self.regs = registries
        self.mon = monitor
        self.lg = loadgen
        self.fx = {r.name: Fixture() for r in registries}
        self.run_id = uuid.uuid4().hex[:8]
        self.p = args.repo_prefix
        self.samples = {}   # metric -> reg -> [values]
        self.by_round = {}  # metric -> reg -> {round: value}
        self.noisy = {}     # metric -> reg -> [rounds whose kept sample was still noisy]
        self.raw = []       # list of dicts
        self.meta = {}      # metric -> (unit, better)
        self.errors = []
        self.backend_pids = getattr(args, "backend_pids", {})  # Tollgate: see --backend-pid

    # -- setup --------------------------------------------------------------
    def setup(self, reg: Registry):
        a, p, fx = self.a, self.p, self.fx[reg.name]
        t0 = time.monotonic()
        reg.ping()
        log(f"{reg.name}: /v2/ ok (auth={reg.auth.scheme or 'none'})")
        # 1. big blob for pull tests
        size = a.blob_mib * MiB
        data, dg = gen_blob(size)
        reg.push_blob_monolithic(f"{p}/big", [memoryview(data)], size, dg)
        buf = bytearray(size + 1)
        n = reg.download_blob(f"{p}/big", dg, buf)
        if n != size or sha256_digest(memoryview(buf)[:n]) != dg:
            raise RegistryError(f"{reg.name}: big blob round-trip mismatch ({n} bytes)")
        fx.big_digest, fx.big_size = dg, size
        del data, buf
        # 2. repo with many tags (also the manifest GET target)
        cfg = make_config("tags")
        cfg_d = sha256_digest(cfg)
        layer = os.urandom(a.small_kib * 1024)
        layer_d = sha256_digest(layer)
        reg.push_blob_monolithic(f"{p}/tags", [cfg], len(cfg), cfg_d)
        reg.push_blob_monolithic(f"{p}/tags", [layer], len(layer), layer_d)
        man, mt = make_manifest(a.manifest_type, cfg_d, len(cfg), [(layer_d, len(layer))])
        man_d = sha256_digest(man)
        got = reg.put_manifest(f"{p}/tags", "latest", man, mt)
        if got and got != man_d:
            raise RegistryError(f"{reg.name}: manifest digest mismatch {got} != {man_d}")
        fx.tag_manifest_digest = man_d
        fx.manifest_size = len(man)

        def put_tag(i):
            reg.put_manifest(f"{p}/tags", f"t{i:04d}", man, mt)

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(put_tag, range(a.tags - 1)))  # + "latest" = a.tags tags
        # 3. config blob for the small-push benchmark
        scfg = make_config("small")
        scfg_d = sha256_digest(scfg)
        reg.push_blob_monolithic(f"{p}/small", [scfg], len(scfg), scfg_d)
        fx.small_config = (scfg_d, len(scfg))

        # 4. repositories for the catalog
        def mk_repo(i):
            repo = f"{p}/cat-{i:04d}"
            c = make_config(repo)
            cd = sha256_digest(c)
            reg.push_blob_monolithic(repo, [c], len(c), cd)
            reg.push_blob_monolithic(repo, [layer], len(layer), layer_d)
            m, mt2 = make_manifest(a.manifest_type, cd, len(c), [(layer_d, len(layer))])
            reg.put_manifest(repo, "latest", m, mt2)

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(mk_repo, range(a.catalog_repos)))
        reg.close_thread_conns()
        # 5. checks
        r = reg.request("GET", f"/v2/{p}/tags/manifests/latest",
                        headers={"Accept": ACCEPT_MANIFESTS}, ok=(200,))
        if sha256_digest(r.body) != man_d:
            raise RegistryError(f"{reg.name}: GET manifest returned different bytes")
        fx.tags_returned = fx.catalog_returned = None
        try:
            r = reg.request("GET", f"/v2/{p}/tags/tags/list", ok=(200,))
            fx.tags_returned = len(json.loads(r.body).get("tags") or [])
        except (RegistryError, ValueError) as e:
            log(f"WARNING {reg.name}: tag list: {e}")
        try:
            r = reg.request("GET", f"/v2/_catalog?n={a.catalog_n}", ok=(200,))
            fx.catalog_returned = len(json.loads(r.body).get("repositories") or [])
        except (RegistryError, ValueError) as e:
            log(f"WARNING {reg.name}: catalog: {e}")
        r = reg.request("HEAD", f"/v2/{p}/big/blobs/{fx.big_digest}", ok=(200,))
        log(f"{reg.name}: setup done in {time.monotonic() - t0:.1f}s; tags/list returns "
            f"{fx.tags_returned} tags, catalog?n={a.catalog_n} returns {fx.catalog_returned} repos")
        if fx.tags_returned is not None and fx.tags_returned < a.tags:
            log(f"WARNING {reg.name}: tag list without ?n returned only {fx.tags_returned} tags")

    # -- individual benchmarks ---------------------------------------------
    # Each returns (value, extra-dict).  Called with the registry's monitor
    # windows already set up by run_one().

    def b_push_mono(self, reg, rnd):
        a = self.a
        size = a.blob_mib * MiB
        total_b, total_t, reps = 0, 0.0, 0
        deadline = time.monotonic() + a.duration
        while True:
            data, dg = gen_blob(size)          # not timed
            t0 = time.perf_counter()
            reg.push_blob_monolithic(f"{self.p}/push", [memoryview(data)], size, dg)
            total_t += time.perf_counter() - t0
            total_b += size
            reps += 1
            if reps >= a.max_reps or (time.monotonic() >= deadline and reps >= a.min_reps):
                break
        return total_b / total_t / MB, {"reps": reps, "seconds": total_t, "bytes": total_b}

    def b_push_chunked(self, reg, rnd):
        a = self.a
        size = a.blob_mib * MiB
        total_b, total_t, reps = 0, 0.0, 0
        deadline = time.monotonic() + a.duration
        while True:
            data, dg = gen_blob(size)
            mv = memoryview(data)
            t0 = time.perf_counter()
            reg.push_blob_chunked(f"{self.p}/push", mv, a.chunk_mib * MiB, dg)
            total_t += time.perf_counter() - t0
            total_b += size
            reps += 1
            if reps >= a.max_reps or (time.monotonic() >= deadline and reps >= a.min_reps):
                break
        return total_b / total_t / MB, {"reps": reps, "seconds": total_t, "bytes": total_b}

    def b_push_small(self, reg, rnd):
        a = self.a
        fx = self.fx[reg.name]
        repo = f"{self.p}/small"
        cfg_d, cfg_s = fx.small_config
        blobs = [os.urandom(a.small_kib * 1024) for _ in range(a.small_count)]
        digests = [sha256_digest(b) for b in blobs]
        deadline = time.monotonic() + max(30.0, a.duration * 10)
        done = [0]
        lock = threading.Lock()

        def op(i):
            if time.monotonic() > deadline:
                return False
            b, d = blobs[i], digests[i]
            reg.push_blob_monolithic(repo, [b], len(b), d)
            m, mt = make_manifest(a.manifest_type, cfg_d, cfg_s, [(d, len(b))])
            reg.put_manifest(repo, f"{self.run_id}-r{rnd}-{i:04d}", m, mt)
            with lock:
                done[0] += 1
            return True

        # pre-open connections so connect time is not measured
        with ThreadPoolExecutor(a.small_concurrency) as ex:
            barrier = threading.Barrier(a.small_concurrency)

            def warm(_):
                reg.request("GET", "/v2/", ok=(200,))
                barrier.wait(timeout=30)

            list(ex.map(warm, range(a.small_concurrency)))
            t0 = time.perf_counter()
            futs = [ex.submit(op, i) for i in range(a.small_count)]
            errs = 0
            for f in as_completed(futs):
                try:
                    f.result()
                except Exception as e:  # noqa
                    errs += 1
                    last = e
            el = time.perf_counter() - t0
        if errs:
            raise RegistryError(f"{errs} small-push ops failed, last: {last}")
        return done[0] / el, {"ops": done[0], "seconds": el, "requests": done[0] * 3}

    def b_pull_blob(self, reg, rnd, streams):
        a = self.a
        fx = self.fx[reg.name]
        repo = f"{self.p}/big"
        bufs = [bytearray(4 * MiB) for _ in range(streams)]
        total_b, reps = 0, 0
        deadline = time.monotonic() + a.duration
        with ThreadPoolExecutor(streams) as ex:
            # warm the keep-alive connections
            list(ex.map(lambda i: reg.request("GET", "/v2/", ok=(200,)), range(streams)))
            t0 = time.perf_counter()
            while True:
                if streams == 1:
                    total_b += reg.download_blob(repo, fx.big_digest, bufs[0])
                else:
                    futs = [ex.submit(reg.download_blob, repo, fx.big_digest, bufs[i])
                            for i in range(streams)]
                    for f in futs:
                        n = f.result()
                        if n != fx.big_size:
                            raise RegistryError(f"short read {n}")
                        total_b += n
                reps += 1
                if reps >= 10000 or (time.monotonic() >= deadline and reps >= a.min_reps):
                    break
            el = time.perf_counter() - t0
        return total_b / el / MB, {"reps": reps, "seconds": el, "bytes": total_b,
                                   "streams": streams}

    def b_load_while_pulling(self, reg, path, conc, accept):
        """Tollgate: b_load of manifest GETs while --mixed-streams threads pull the big blob
        back to back, as a node pulls layers while kubelets poll manifests.  The server's
        CPU then serves both, so no cpu.* row is recorded (no 'requests' in extra)."""
        fx = self.fx[reg.name]
        stop = threading.Event()
        pulled, failures = [], []

        def pull():
            buf, total = bytearray(4 * MiB), 0
            try:
                while not stop.is_set():
                    total += reg.download_blob(f"{self.p}/big", fx.big_digest, buf)
            except Exception as e:  # noqa
                failures.append(e)
            pulled.append(total)

        threads = [threading.Thread(target=pull, daemon=True)
                   for _ in range(self.a.mixed_streams)]
        for t in threads:
            t.start()
        try:
            value, res = self.b_load(reg, path, "GET", conc, accept)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        if failures:
            raise RegistryError(f"blob pulls failed meanwhile: {failures[0]}")
        res = dict(res)
        res["manifest_requests"] = res.pop("requests")
        res["pulled_bytes"] = sum(pulled)
        return value, res

    def b_load(self, reg, path, method, conc, accept=None):
        a = self.a
        url = reg.base + reg.prefix + path
        headers = {}
        if accept:
            headers["Accept"] = accept
        # preflight with our own client: checks the answer and settles auth (scope
        # from the challenge, token valid for the whole run) for wrk/hey
        pre = reg.request(method, path, headers=dict(headers), ok=(200,), min_valid=a.duration + 15)
        if pre.authorization:
            headers["Authorization"] = pre.authorization
        res = self.lg.run(url, method, conc, a.duration, headers)
        if res["requests"] == 0:
            raise RegistryError("no request completed")
        if res["err_status"] > 0.01 * res["requests"]:
            raise RegistryError(f"{res['err_status']} of {res['requests']} responses were errors")
        return res["rps"], res

    # -- driver --------------------------------------------------------------
    def benchmarks(self):
        """(metric, unit, better, fn(reg, rnd) -> (value, extra))"""
        a, p = self.a, self.p
        B = []
        B.append(("push.blob_monolithic", "MB/s", "higher", self.b_push_mono))
        B.append(("push.blob_chunked", "MB/s", "higher", self.b_push_chunked))
        B.append(("push.small_blob+manifest", "ops/s", "higher", self.b_push_small))
        B.append(("pull.blob_1stream", "MB/s", "higher", lambda r, n: self.b_pull_blob(r, n, 1)))
        B.append((f"pull.blob_{a.streams}streams", "MB/s", "higher",
                  lambda r, n: self.b_pull_blob(r, n, a.streams)))
        for c in a.conc:
            B.append((f"pull.manifest_by_tag.c{c}", "req/s", "higher",
                      lambda r, n, c=c: self.b_load(r, f"/v2/{p}/tags/manifests/latest", "GET", c,
                                                    ACCEPT_MANIFESTS)))
            B.append((f"pull.manifest_by_digest.c{c}", "req/s", "higher",
                      lambda r, n, c=c: self.b_load(
                          r, f"/v2/{p}/tags/manifests/{self.fx[r.name].tag_manifest_digest}",
                          "GET", c, ACCEPT_MANIFESTS)))
        if a.mixed_streams:
            B.append((f"mixed.manifest_by_tag.c{a.latency_conc}", "req/s", "higher",
                      lambda r, n: self.b_load_while_pulling(
                          r, f"/v2/{p}/tags/manifests/latest", a.latency_conc,
                          ACCEPT_MANIFESTS)))
        B.append((f"pull.blob_head.c{a.aux_conc}", "req/s", "higher",
                  lambda r, n: self.b_load(r, f"/v2/{p}/big/blobs/{self.fx[r.name].big_digest}",
                                           "HEAD", a.aux_conc)))
        B.append((f"pull.tags_list_{a.tags}.c{a.aux_conc}", "req/s", "higher",
                  lambda r, n: self.b_load(r, f"/v2/{p}/tags/tags/list", "GET", a.aux_conc)))
        B.append((f"pull.catalog_n{a.catalog_n}.c{a.aux_conc}", "req/s", "higher",
                  lambda r, n: self.b_load(r, f"/v2/_catalog?n={a.catalog_n}", "GET", a.aux_conc)))
        if a.only:
            pats = [s.strip() for s in a.only.split(",") if s.strip()]
            B = [b for b in B if any(b[0].startswith(x) or x in b[0] for x in pats)]
        return B

    def record(self, metric, unit, better, reg, value, rnd=0):
        self.meta[metric] = (unit, better)
        self.samples.setdefault(metric, {}).setdefault(reg, []).append(value)
        self.by_round.setdefault(metric, {}).setdefault(reg, {})[rnd] = value

    def backend_cpu(self, name):
        """Tollgate: CPU seconds of the processes the registry depends on (--backend-pid)."""
        pids = self.backend_pids.get(name)
        return sum(proc_cpu_s(p) for p in proc_tree(pids)) if pids else 0.0

    def measure(self, metric, fn, reg, rnd):
        """One attempt: run fn and account CPU/RSS around it."""
        self.mon.reset(reg.name)
        cpu0 = self.mon.cpu(reg.name)
        backend0 = self.backend_cpu(reg.name)
        ct0 = os.times()
        h0 = host_cpu()
        t0 = time.monotonic()
        err = None
        try:
            value, extra = fn(reg, rnd)
        except Exception as e:  # keep going with the other benchmarks
            value, extra, err = None, {}, f"{type(e).__name__}: {e}"
        wall = time.monotonic() - t0
        ct1 = os.times()
        h1 = host_cpu()
        cpu1 = self.mon.cpu(reg.name)
        backend1 = self.backend_cpu(reg.name)
        peak = self.mon.take_peak(reg.name)
        client_cpu = ((ct1.user - ct0.user) + (ct1.system - ct0.system)
                      + (ct1.children_user - ct0.children_user)
                      + (ct1.children_system - ct0.children_system))
        rec = {"round": rnd, "registry": reg.name, "metric": metric, "value": value,
               "wall_s": round(wall, 3), "client_cpu_s": round(client_cpu, 3),
               "host_busy_s": round(h1[0] - h0[0], 3), "host_irq_s": round(h1[1] - h0[1], 3),
               "host_steal_s": round(h1[2] - h0[2], 3), "error": err}
        if cpu0 is not None:
            rec["server_cpu_s"] = round(cpu1 - cpu0, 3)
            rec["server_peak_rss_mib"] = round(peak / MiB, 1)
            # user+system CPU burnt by every other process meanwhile (noise indicator;
            # includes kernel threads such as writeback)
            foreign = max(0.0, rec["host_busy_s"] - client_cpu - rec["server_cpu_s"]
                          - (backend1 - backend0))
            if self.backend_pids.get(reg.name):
                rec["backend_cpu_s"] = round(backend1 - backend0, 3)
            rec["foreign_cpu_s"] = round(foreign, 3)
            rec["foreign_pct"] = round(foreign / (wall * NCPU) * 100, 1) if wall > 0 else 0.0
        rec.update({k: v for k, v in extra.items() if k not in rec})
        return value, extra, rec

    def run_one(self, metric, unit, better, fn, reg, rnd):
        a = self.a
        attempts = []
        for attempt in range(1 + max(0, a.noise_retries)):
            value, extra, rec = self.measure(metric, fn, reg, rnd)
            rec["attempt"] = attempt
            attempts.append((value, extra, rec))
            noisy = rec.get("foreign_pct", 0.0) > a.noise_threshold
            rec["noisy"] = noisy
            if value is None or not noisy or attempt >= a.noise_retries:
                break
            log(f"r{rnd} {reg.name:>10} {metric:<34} noisy sample "
                f"({rec['foreign_pct']:.0f}% foreign CPU, value {value:,.1f}); "
                f"retrying in {a.noise_pause:g}s")
            time.sleep(a.noise_pause)
        # keep the least disturbed successful attempt
        ok = [t for t in attempts if t[0] is not None]
        value, extra, rec = (min(ok, key=lambda t: t[2].get("foreign_pct", 0.0)) if ok
                             else attempts[-1])
        rec["attempts"] = len(attempts)
        rec["unit"] = unit
        for t in attempts:
            if t[2] is not rec:
                t[2]["discarded"] = True
            self.raw.append(t[2])
        if value is None:
            err = rec["error"]
            self.errors.append({"round": rnd, "registry": reg.name, "metric": metric, "error": err})
            log(f"ERROR {reg.name} {metric}: {err}")
        else:
            self.record(metric, unit, better, reg.name, value, rnd)
            if rec.get("noisy"):
                self.noisy.setdefault(metric, {}).setdefault(reg.name, []).append(rnd)
            if (metric.startswith(("pull.manifest_by", "mixed.manifest_by")) and ".c" in metric
                    and extra.get("p50_ms") is not None):
                c = metric.rsplit(".c", 1)[1]
                if int(c) == a.latency_conc:
                    kind = metric.rsplit(".c", 1)[0].removeprefix("pull.")  # Tollgate: mixed.
                    for pct in ("p50", "p99"):
                        self.record(f"latency.{kind}.c{c}.{pct}", "ms", "lower", reg.name,
                                    extra[f"{pct}_ms"], rnd)
            # server CPU cost per unit of work (less sensitive to machine noise than throughput)
            if rec.get("server_cpu_s") is not None:
                work = None
                if unit == "MB/s" and extra.get("bytes"):
                    work, wunit = extra["bytes"] / (1024 ** 3), "cpu-s/GiB"
                elif unit == "ops/s" and extra.get("ops"):
                    work, wunit = extra["ops"] / 1000, "cpu-s/1k ops"
                elif unit == "req/s" and extra.get("requests"):
                    work, wunit = extra["requests"] / 1000, "cpu-s/1k req"
                if work:
                    self.record(f"cpu.{metric}", wunit, "lower", reg.name,
                                rec["server_cpu_s"] / work, rnd)
                if work and rec.get("backend_cpu_s") is not None:  # Tollgate: --backend-pid
                    self.record(f"cpu.backend.{metric}", wunit, "lower", reg.name,
                                rec["backend_cpu_s"] / work, rnd)
        shown = "ERR" if value is None else f"{value:,.1f} {unit}"
        more = ""
        if extra.get("p99_ms") is not None:
            more = f" p50={extra['p50_ms']:.2f}ms p99={extra['p99_ms']:.2f}ms"
        if rec.get("server_cpu_s") is not None:
            more += (f" srv_cpu={rec['server_cpu_s']:.2f}s"
                     f" rss_peak={rec['server_peak_rss_mib']:.0f}MiB"
                     f" foreign={rec['foreign_pct']:.0f}%")
        if rec["host_steal_s"] > 0.05:
            more += f" steal={rec['host_steal_s']:.2f}s"
        log(f"r{rnd} {reg.name:>10} {metric:<34} {shown:>16}{more}")

    def run(self):
        for reg in self.regs:
            self.setup(reg)
        benches = self.benchmarks()
        n = len(self.regs)
        for rnd in range(1, self.a.rounds + 1):
            shift = 0 if self.a.no_rotate else (rnd - 1) % n
            order = self.regs[shift:] + self.regs[:shift]
            log(f"=== round {rnd}/{self.a.rounds}: order {' '.join(r.name for r in order)} ===")
            for metric, unit, better, fn in benches:
                for reg in order:
                    self.run_one(metric, unit, better, fn, reg, rnd)
        # memory: peak RSS over the whole run + kernel high-water mark
        for reg in self.regs:
            if reg.name in self.mon.peak_all:
                self.mon.sample()
                self.record("memory.peak_rss_sampled", "MiB", "lower", reg.name,
                            self.mon.peak_all[reg.name] / MiB)
                self.record("memory.vmhwm", "MiB", "lower", reg.name, self.mon.hwm(reg.name) / MiB)
                self.record("memory.rss_at_end", "MiB", "lower", reg.name,
                            self.mon.current(reg.name) / MiB)
        self.mon.stop()

    # -- reporting -------------------------------------------------------------
    def summary(self):
        names = [r.name for r in self.regs]
        first = names[0]
        out = {}
        for metric, per in self.samples.items():
            unit, better = self.meta[metric]
            row = {"unit": unit, "better": better, "registries": {}}
            base = statistics.median(per[first]) if per.get(first) else None
            rounds_first = self.by_round.get(metric, {}).get(first, {})
            for nm in names:
                v = per.get(nm) or []
                if not v:
                    row["registries"][nm] = None
                    continue
                med = statistics.median(v)
                # paired ratio: this registry / baseline in the SAME round (adjacent in time)
                rr = self.by_round.get(metric, {}).get(nm, {})
                pairs = [rr[r] / rounds_first[r] for r in rr
                         if r in rounds_first and rounds_first[r]]
                row["registries"][nm] = {
                    "median": med, "min": min(v), "max": max(v), "samples": v,
                    "noisy_rounds": self.noisy.get(metric, {}).get(nm, []),
                    "spread_pct": (max(v) - min(v)) / med * 100 if med else None,
                    "ratio_to_first": (med / base) if base else None,
                    "paired_ratios": pairs,
                    "paired_ratio_median": statistics.median(pairs) if pairs else None,
                }
            out[metric] = row
        return out

    def print_tables(self, summ, file=sys.stdout):
        names = [r.name for r in self.regs]
        first = names[0]
        groups = ["push", "pull", "latency", "memory", "cpu"]
        seen = sorted(summ, key=lambda m: groups.index(m.split(".")[0])
                      if m.split(".")[0] in groups else 9)
        w = max(10, max(len(n) for n in names))
        print(f"# regbench: {len(names)} registries, {self.a.rounds} round(s), "
              f"{self.a.duration:g}s per sub-benchmark; baseline = {first}", file=file)
        print("# ratio = median(registry) / median(baseline); paired = median over rounds of the "
              "same-round ratio [min..max]", file=file)
        for metric in seen:
            row = summ[metric]
            if metric.startswith("cpu."):
                continue
            nr = max(len(r["samples"]) for r in row["registries"].values() if r) if any(
                row["registries"].values()) else 0
            print(f"\n## {metric}  [{row['unit']}, {row['better']} is better; "
                  f"median of {nr} sample(s)]", file=file)
            print(f"  {'registry':<{w}} {'median':>11} {'min':>11} {'max':>11} {'spread%':>8} "
                  f"{'ratio':>7} {'paired [min..max]':>22}", file=file)
            for nm in names:
                r = row["registries"].get(nm)
                if not r:
                    print(f"  {nm:<{w}} {'ERR':>11}", file=file)
                    continue
                sp = f"{r['spread_pct']:.1f}" if r["spread_pct"] is not None else "-"
                ra = f"{r['ratio_to_first']:.3f}" if r["ratio_to_first"] is not None else "-"
                pr = r["paired_ratios"]
                pa = (f"{r['paired_ratio_median']:.3f} [{min(pr):.2f}..{max(pr):.2f}]"
                      if pr else "-")
                nz = f"  noisy rounds: {r['noisy_rounds']}" if r.get("noisy_rounds") else ""
                print(f"  {nm:<{w}} {r['median']:>11,.2f} {r['min']:>11,.2f} "
                      f"{r['max']:>11,.2f} {sp:>8} "
                      f"{ra:>7} {pa:>22}{nz}", file=file)
        # noise indicator: CPU burnt by other processes while we measured
        print("", file=file)
        for nm in names:
            kept = [r for r in self.raw if r["registry"] == nm and not r.get("discarded")]
            fr = [r["foreign_pct"] for r in kept if "foreign_pct" in r]
            st = [r["host_steal_s"] / (r["wall_s"] * NCPU) * 100 for r in kept if r["wall_s"] > 0]
            retried = sum(1 for r in self.raw if r["registry"] == nm and r.get("discarded"))
            if fr:
                print(f"# noise {nm}: other processes used median {statistics.median(fr):.1f}% "
                      f"(max {max(fr):.1f}%) of {NCPU} CPUs during kept samples; steal median "
                      f"{statistics.median(st):.1f}%; {retried} noisy attempt(s) re-measured",
                      file=file)
        # compact summary (incl. server CPU cost)
        print(f"\n## summary (medians; ratio = registry / {first}, paired per round)", file=file)
        hdr = f"  {'metric':<40} {'unit':<12}" + "".join(f" {n[:11]:>11}" for n in names) + \
              "".join(f" {('x ' + n)[:9]:>9} {'paired':>7}" for n in names[1:])
        print(hdr, file=file)
        for metric in seen:
            row = summ[metric]
            cells = []
            for nm in names:
                r = row["registries"].get(nm)
                cells.append(f" {r['median']:>11,.2f}" if r else f" {'ERR':>11}")
            rat = []
            for nm in names[1:]:
                r = row["registries"].get(nm)
                if r and r["ratio_to_first"]:
                    pm = r["paired_ratio_median"]
                    paired = f"{pm:>7.3f}" if pm else f"{'-':>7}"
                    rat.append(f" {r['ratio_to_first']:>9.3f} {paired}")
                else:
                    rat.append(f" {'-':>9} {'-':>7}")
            print(f"  {metric:<40} {row['unit']:<12}" + "".join(cells) + "".join(rat), file=file)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def parse_kv(items, what):
    out = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"--{what} expects name=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", action="append", required=True, metavar="NAME=URL",
                    help="registry base URL, repeatable; the first one is the baseline for ratios")
    ap.add_argument("--pid", action="append", metavar="NAME=PID[,PID..]",
                    help="registry process id(s) for RSS/CPU sampling (descendants included)")
    # Tollgate: an S3 server burns CPU for the registry it serves; it is not noise.
    ap.add_argument("--backend-pid", action="append", metavar="NAME=PID[,PID..]",
                    help="processes registry NAME depends on (its S3 server): their CPU is "
                         "reported as backend_cpu_s and not counted as other processes' noise")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--insecure", action="store_true", help="skip TLS verification")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per timed sub-benchmark")
    ap.add_argument("--min-reps", type=int, default=1,
                    help="min repetitions of a 64 MiB transfer per round")
    ap.add_argument("--max-reps", type=int, default=8,
                    help="max repetitions of a 64 MiB upload per round")
    ap.add_argument("--blob-mib", type=int, default=64)
    ap.add_argument("--chunk-mib", type=int, default=8)
    ap.add_argument("--streams", type=int, default=8, help="parallel streams for the blob pull")
    ap.add_argument("--small-count", type=int, default=200)
    ap.add_argument("--small-kib", type=int, default=4)
    ap.add_argument("--small-concurrency", type=int, default=32)
    ap.add_argument("--conc", default="1,16,64", help="manifest GET concurrency levels")
    ap.add_argument("--latency-conc", type=int, default=16)
    ap.add_argument("--aux-conc", type=int, default=16, help="concurrency of HEAD/tag list/catalog")
    ap.add_argument("--tags", type=int, default=1000)
    ap.add_argument("--catalog-repos", type=int, default=100)
    ap.add_argument("--catalog-n", type=int, default=100)
    ap.add_argument("--manifest-type", choices=["docker", "oci"], default="docker")
    ap.add_argument("--repo-prefix", default="regbench")
    ap.add_argument("--load-tool", choices=["auto", "wrk", "hey"], default="auto")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--only", help="comma-separated metric name prefixes/substrings to run")
    ap.add_argument("--mixed-streams", type=int, default=4,
                    help="Tollgate: blob pulls running during mixed.* (0: no mixed.* metric)")
    ap.add_argument("--no-rotate", action="store_true", help="keep registry order fixed each round")
    ap.add_argument("--noise-threshold", type=float, default=30.0,
                    help="a sample during which other processes used more than this %% of all CPUs "
                         "is re-measured (needs --pid)")
    ap.add_argument("--noise-pause", type=float, default=2.0,
                    help="seconds to wait before a re-measurement")
    ap.add_argument("--noise-retries", type=int, default=2,
                    help="re-measurements of a noisy sample; the least disturbed attempt is kept")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-request socket timeout")
    ap.add_argument("--json", help="write results as JSON here")
    a = ap.parse_args(argv)
    a.conc = [int(x) for x in a.conc.split(",") if x.strip()]
    if a.latency_conc not in a.conc:
        a.conc.append(a.latency_conc)

    regs_kv = list(parse_kv(a.registry, "registry").items())
    pids_kv = {k: [int(x) for x in v.split(",") if x] for k, v in parse_kv(a.pid, "pid").items()}
    a.backend_pids = {k: [int(x) for x in v.split(",") if x]
                      for k, v in parse_kv(a.backend_pid, "backend-pid").items()}
    for k in pids_kv:
        if k not in dict(regs_kv):
            raise SystemExit(f"--pid {k}: no registry of that name")
    tool = a.load_tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else ("hey" if shutil.which("hey") else None)
        if tool is None:
            raise SystemExit("need wrk or hey in PATH")
    regs = [Registry(n, u, Auth(a.user, a.password, a.insecure), pids_kv.get(n, []),
                     timeout=a.timeout, insecure=a.insecure) for n, u in regs_kv]
    mon = ProcMonitor({r.name: r.pids for r in regs})
    tmp = tempfile.mkdtemp(prefix="regbench-")
    t_start = time.time()
    try:
        b = Bench(a, regs, mon, LoadGen(tool, tmp, a.wrk_threads))
        try:
            b.run()
        except KeyboardInterrupt:
            log("interrupted; reporting what was measured")
        summ = b.summary()
        b.print_tables(summ)
        if b.errors:
            print(f"\n{len(b.errors)} sub-benchmark error(s):", file=sys.stdout)
            for e in b.errors[:20]:
                print(f"  r{e['round']} {e['registry']} {e['metric']}: {e['error'][:200]}")
        if a.json:
            doc = {
                "tool": "regbench", "version": 1,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
                "elapsed_s": round(time.time() - t_start, 1),
                "host": {"hostname": platform.node(), "cpus": os.cpu_count(),
                         "python": platform.python_version(), "load_tool": tool,
                         "loadavg_end": os.getloadavg()},
                "args": {k: v for k, v in vars(a).items() if k != "password"},
                "registries": [{"name": r.name, "url": r.base + r.prefix, "pids": r.pids,
                                "auth": r.auth.scheme, "token_fetches": r.auth.token_fetches,
                                "tags_returned": getattr(b.fx[r.name], "tags_returned", None),
                                "catalog_returned": getattr(b.fx[r.name], "catalog_returned", None)}
                               for r in regs],
                "baseline": regs[0].name,
                "summary": summ,
                # Tollgate: every value by round, so that any two registries can be paired
                "by_round": b.by_round,
                "raw": b.raw,
                "errors": b.errors,
            }
            with open(a.json, "w") as f:
                json.dump(doc, f, indent=1)
            log(f"wrote {a.json}")
        return 1 if b.errors else 0
    finally:
        mon.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
