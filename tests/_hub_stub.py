"""A local stand-in for the Hugging Face Hub HTTP API, enough for `create_repo`, `create_branch`,
`add_space_variable` and `create_commit` of small files.

huggingface_hub 2.x talks to these endpoints (see hf_api.py and _commit_api.py):
- POST /api/repos/create                            {"name", "organization", "type", "sdk", ...} -> {"url"}
- POST /api/{type}s/{repo}/branch/{branch}          -> {}
- POST /api/spaces/{repo}/variables                 {"key", "value"} -> {key: {"value"}}
- POST /api/validate-yaml                           {"content", "repoType"} -> {} (400 with errors if invalid)
- POST /api/{type}s/{repo}/preupload/{revision}     {"files": [...]} -> upload mode per file; the stub answers
  "regular" for every file, so content arrives base64-encoded in the commit and no LFS/Xet transfer happens.
- POST /api/{type}s/{repo}/commit/{revision}        NDJSON: a header line, then one {"key": "file"} per file.
Any route can be made to fail with a status code, to test error handling.
"""

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import yaml


FRONT_MATTER = re.compile(r"^---\n(.*?)\n---\n", re.DOTALL)
REPO_ROUTE = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)/(?P<action>[a-z]+)(/(?P<rest>.*))?$"
)


@dataclass
class Commit:
    """One commit the stub received."""

    repo_type: str
    repo_id: str
    revision: str
    summary: str
    create_pr: bool
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class HubState:
    """Everything the stub received, and the failures it should answer with."""

    created: list[dict] = field(default_factory=list)
    branches: list[tuple[str, str]] = field(default_factory=list)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    failures: dict[str, tuple[int, str]] = field(default_factory=dict)


class HubHandler(BaseHTTPRequestHandler):
    """Routes POST requests to the handlers below; `server.state` holds the HubState."""

    def log_message(self, format, *args):  # keep the test output quiet
        pass

    def do_POST(self):  # noqa: N802 (http.server naming)
        url = urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        route, handler, params = self.route(url.path)
        failure = self.server.state.failures.get(route)
        if failure:
            self.answer(failure[0], {"error": failure[1]}, error=failure[1])
            return
        handler(body, params, parse_qs(url.query))

    def route(self, path: str):
        if path == "/api/repos/create":
            return "create", self.create_repo, {}
        if path == "/api/validate-yaml":
            return "validate-yaml", self.validate_yaml, {}
        match = REPO_ROUTE.match(path)
        if match is None:
            return "unknown", self.not_found, {}
        handlers = {
            "preupload": self.preupload,
            "commit": self.commit,
            "branch": self.create_branch,
            "variables": self.add_variable,
        }
        return match["action"], handlers.get(match["action"], self.not_found), match.groupdict()

    def answer(self, status: int, document: dict, error: str | None = None) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error:
            self.send_header("X-Error-Message", error)
        self.end_headers()
        self.wfile.write(data)

    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def not_found(self, body, params, query):
        self.answer(404, {"error": f"stub: no route for {self.path}"}, error="Not found")

    def create_repo(self, body, params, query):
        payload = json.loads(body)
        self.server.state.created.append(payload)
        prefix = "spaces/" if payload.get("type") == "space" else ""
        self.answer(200, {"url": f"{self.base_url()}/{prefix}{payload['organization']}/{payload['name']}"})

    def validate_yaml(self, body, params, query):
        header = FRONT_MATTER.match(json.loads(body)["content"])
        try:
            yaml.safe_load(header[1])
        except (yaml.YAMLError, TypeError) as error:
            self.answer(400, {"errors": [{"message": str(error)}]}, error="Invalid YAML")
            return
        self.answer(200, {})

    def preupload(self, body, params, query):
        files = json.loads(body)["files"]
        modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files]
        self.answer(200, {"files": modes})

    def create_branch(self, body, params, query):
        self.server.state.branches.append((params["repo"], params["rest"]))
        self.answer(200, {})

    def add_variable(self, body, params, query):
        payload = json.loads(body)
        self.server.state.variables.setdefault(params["repo"], {})[payload["key"]] = payload["value"]
        self.answer(200, {payload["key"]: {"value": payload["value"]}})

    def commit(self, body, params, query):
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        commit = Commit(
            repo_type=params["type"].removesuffix("s"),
            repo_id=params["repo"],
            revision=params["rest"],
            summary=header["summary"],
            create_pr=query.get("create_pr") == ["1"],
        )
        for line in lines:
            if line["key"] == "file":
                commit.files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
        self.server.state.commits.append(commit)
        repo_url = f"{self.base_url()}/{params['repo']}"
        pr_url = f"{repo_url}/discussions/1" if commit.create_pr else None
        self.answer(
            200, {"commitUrl": f"{repo_url}/commit/{'0' * 40}", "commitOid": "0" * 40, "pullRequestUrl": pr_url}
        )


class HubStub:
    """A threaded HTTP server on 127.0.0.1 playing the Hub; use as a context manager, pass `url` as endpoint."""

    def __init__(self) -> None:
        self.state = HubState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
        self.server.state = self.state
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def fail(self, route: str, status: int, message: str) -> None:
        """Answer every request to `route` (create, preupload, commit, branch, variables, ...) with `status`."""
        self.state.failures[route] = (status, message)

    def __enter__(self) -> "HubStub":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
