"""A tiny stand-in for the Hugging Face Hub on 127.0.0.1, for tests that push and pull with the real clients.

It answers exactly the endpoints `huggingface_hub` calls to create a repo, upload a folder in one commit (files
sent inline as base64, `uploadMode: "regular"`, so no LFS or Xet) and download files, as `transformers`'
`from_pretrained` and `pipeline` do:

- ``POST /api/repos/create``                       -> ``{"url": ...}`` (409 when it exists)
- ``POST /api/validate-yaml``                      -> no errors (the README's metadata is accepted)
- ``POST /api/models/{repo}/preupload/{revision}`` -> every file ``regular``
- ``POST /api/models/{repo}/commit/{revision}``    -> NDJSON header + ``file`` lines; records one commit
- ``HEAD|GET /{repo}/resolve/{revision}/{path}``   -> the file with ``ETag`` and ``X-Repo-Commit``; 404 with
  ``X-Error-Code: EntryNotFound`` (or ``RepoNotFound``) otherwise
- ``GET /api/models/{repo}[/revision/{rev}]``      -> repo info (``sha``, ``siblings``)
- ``GET /api/models/{repo}/tree/{rev}[/{path}]``   -> the files under ``path``

Any other request gets 404 and is recorded in ``unhandled`` so a test can show what a client asked for.
The server listens on loopback only, refuses bodies above ``max_body_bytes`` and stops itself after
``lifetime_s`` seconds if the test did not stop it (use it as a context manager).
"""

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List
from urllib.parse import unquote, urlsplit


class FakeHub:
    """State of the fake Hub: repos (their files) and the commits received."""

    def __init__(self, max_body_bytes: int = 64 * 2**20, lifetime_s: float = 300.0):
        self.max_body_bytes = max_body_bytes
        self.lifetime_s = lifetime_s
        self.repos: Dict[str, Dict[str, bytes]] = {}
        self.commits: List[dict] = []
        self.unhandled: List[str] = []
        self.lock = threading.Lock()
        self._server = None
        self._thread = None
        self._timer = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            state = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _repo_commit_id(files: Dict[str, bytes]) -> str:
    digest = hashlib.sha1()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha1(files[path]).digest())
    return digest.hexdigest()


class _Handler(BaseHTTPRequestHandler):
    state: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    # ------------------------------------------------------------------ plumbing
    def _reply(self, status: int, body: bytes = b"", headers=None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload, headers=None):
        self._reply(status, json.dumps(payload).encode(), headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.state.max_body_bytes:
            raise ValueError(f"request body of {length} bytes exceeds the fake Hub's limit")
        return self.rfile.read(length)

    def _refuse_non_loopback(self) -> bool:
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            self._json(403, {"error": "the fake Hub serves loopback clients only"})
            return True
        return False

    def _not_found(self, code="EntryNotFound"):
        with self.state.lock:
            self.state.unhandled.append(f"{self.command} {self.path}")
        self._json(404, {"error": f"{code}: {self.path}"}, {"X-Error-Code": code})

    # ------------------------------------------------------------------ routes
    def do_POST(self):
        if self._refuse_non_loopback():
            return
        try:
            body = self._body()
        except ValueError as err:
            self._json(413, {"error": str(err)})
            return
        path = unquote(urlsplit(self.path).path)
        if path == "/api/repos/create":
            request = json.loads(body or b"{}")
            organization = request.get("organization")
            repo_id = f"{organization}/{request['name']}" if organization else request["name"]
            with self.state.lock:
                if repo_id in self.state.repos:
                    self._json(409, {"error": "You already created this model repo",
                                     "url": f"{self.state.endpoint}/{repo_id}"})
                    return
                self.state.repos[repo_id] = {}
            self._json(200, {"url": f"{self.state.endpoint}/{repo_id}", "name": repo_id})
        elif path == "/api/validate-yaml":
            self._json(200, {"errors": [], "warnings": []})
        elif path.startswith("/api/models/") and "/preupload/" in path:
            request = json.loads(body or b"{}")
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                     for f in request.get("files", [])]
            self._json(200, {"files": files, "commitOid": None})
        elif path.startswith("/api/models/") and "/commit/" in path:
            repo_id, revision = path[len("/api/models/"):].split("/commit/", 1)
            self._commit(repo_id, revision, body)
        else:
            self._not_found()

    def _commit(self, repo_id: str, revision: str, body: bytes):
        with self.state.lock:
            if repo_id not in self.state.repos:
                self._json(404, {"error": f"Repository {repo_id} not found"}, {"X-Error-Code": "RepoNotFound"})
                return
            header, added, deleted = {}, {}, []
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["key"] == "header":
                    header = item["value"]
                elif item["key"] == "file":
                    if item["value"].get("encoding") != "base64":
                        self._json(400, {"error": "files must be base64"})
                        return
                    added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    deleted.append(item["value"]["path"])
                else:  # lfsFile, copies: the fake never asks for them (uploadMode is "regular")
                    self._json(400, {"error": f"the fake Hub does not support {item['key']!r} operations"})
                    return
            files = self.state.repos[repo_id]
            for path in deleted:
                files.pop(path, None)
            files.update(added)
            oid = _repo_commit_id(files)
            self.state.commits.append({"repo_id": repo_id, "revision": revision, "oid": oid,
                                       "summary": header.get("summary"), "files": sorted(added)})
        self._json(200, {"commitUrl": f"{self.state.endpoint}/{repo_id}/commit/{oid}", "commitOid": oid,
                         "success": True})

    def do_HEAD(self):
        self._resolve()

    def do_GET(self):
        path = unquote(urlsplit(self.path).path)
        if path.startswith("/api/models/"):
            self._api_get(path[len("/api/models/"):].split("/"))
        else:
            self._resolve()

    def _api_get(self, parts: List[str]):
        """Repo info (``/api/models/{repo}[/revision/{rev}]``) and file listings (``.../tree/{rev}[/{path}]``)."""
        if self._refuse_non_loopback():
            return
        repo_id, rest = "/".join(parts[:2]), parts[2:]
        with self.state.lock:
            files = dict(self.state.repos.get(repo_id) or {}) if repo_id in self.state.repos else None
        if files is None:
            self._not_found("RepoNotFound")
            return
        commit = _repo_commit_id(files)
        if not rest or rest[0] == "revision":
            self._json(200, {"id": repo_id, "modelId": repo_id, "sha": commit, "private": False, "tags": [],
                             "siblings": [{"rfilename": name} for name in sorted(files)]})
        elif rest[0] == "tree":
            folder = "/".join(rest[2:]).strip("/")
            prefix = folder + "/" if folder else ""
            listing = [{"type": "file", "path": name, "size": len(content), "oid": hashlib.sha1(content).hexdigest()}
                       for name, content in sorted(files.items()) if name.startswith(prefix)]
            if folder and not listing:
                self._not_found("EntryNotFound")
                return
            self._json(200, listing)
        else:
            self._not_found()

    def _resolve(self):
        if self._refuse_non_loopback():
            return
        path = unquote(urlsplit(self.path).path).lstrip("/")
        if "/resolve/" not in path:
            self._not_found()
            return
        repo_id, rest = path.split("/resolve/", 1)
        revision, _, filename = rest.partition("/")
        with self.state.lock:
            files = self.state.repos.get(repo_id)
            if files is None:
                self._not_found("RepoNotFound")
                return
            content = files.get(filename)
            commit = _repo_commit_id(files)
        if content is None:
            self._not_found("EntryNotFound")
            return
        etag = '"' + hashlib.sha1(content).hexdigest() + '"'
        self._reply(200, content, {"ETag": etag, "X-Repo-Commit": commit}, content_type="application/octet-stream")


__all__ = ["FakeHub"]
