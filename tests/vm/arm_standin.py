"""A loopback stand-in of the Azure Resource Manager REST API, for otel-vm's tests.

It stands in for ``https://management.azure.com`` (which cannot be reached here) and answers the
requests otel-vm's SDK clients make the way ARM does, as far as the SDK's pipeline can tell:

* resource groups: ``PUT`` (synchronous, ``201``/``200``; an unknown region is ``400
  LocationNotAvailableForResourceGroup``), ``GET`` (``404 ResourceGroupNotFound``), ``DELETE``
  (``202`` + ``Location``; polled ``202`` until the group and all it holds are gone);
* resources in a group (vnet, NSG, public IP, NIC, VM, DevTestLab schedule): ``PUT`` answers
  ``201`` with ``provisioningState: Creating`` (``Updating`` for an existing one) and an
  ``Azure-AsyncOperation`` URL; the operation says ``InProgress`` once, then ``Succeeded`` (or
  ``Failed`` with an error body when a failure is injected) and the resource's
  ``provisioningState`` follows; ``GET`` of a missing resource is ``404 ResourceNotFound``;
  a ``PUT`` into a group being deleted is ``409 ResourceGroupBeingDeleted``, and a ``PUT`` of a
  resource whose operation is still running ``409 AnotherOperationInProgress``;
* VM ``POST …/deallocate`` and ``…/start``: ``202`` + ``Azure-AsyncOperation`` + ``Location``;
  ``GET …?$expand=instanceView`` tells ``PowerState/running`` or ``PowerState/deallocated``;
* ``429`` with ``Retry-After`` for the next N requests when throttling is asked for;
* ``404 SubscriptionNotFound`` for any subscription but its own; ``401`` without a bearer token.

Every request is recorded (method, path, api-version) for the tests to read.
:meth:`ArmStandIn.connect` gives otel-vm's real SDK clients pointed at it.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
REGIONS = ("westeurope", "eastus", "northeurope", "westus2")
PUBLIC_ADDRESS = "203.0.113.10"  # TEST-NET-3: what the stand-in allocates to a public IP

_GROUP = re.compile(r"/subscriptions/([^/]+)/resourcegroups/([^/]+)", re.I)


@dataclass
class Request:
    method: str
    path: str
    api_version: str
    body: Any


@dataclass
class Operation:
    resource: str  # lower-case resource path
    polls: int = 0
    fail: tuple[str, str] | None = None  # (code, message)
    then: str = "Succeeded"  # provisioningState of the resource once done
    power: str | None = None  # the VM's power state once done


@dataclass
class State:
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-case name -> body
    deleting: dict[str, int] = field(default_factory=dict)  # group -> polls left
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-case path -> body
    operations: dict[str, Operation] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    throttle: int = 0  # the next N requests get 429
    retry_after: str = "1"
    fail: dict[str, tuple[str, str]] = field(default_factory=dict)  # resource name -> (code, message), once
    lock: threading.Lock = field(default_factory=threading.Lock)


class ArmStandIn:
    """The server; ``with ArmStandIn() as arm: arm.url …``."""

    def __init__(self) -> None:
        self.state = State()
        self._ids = itertools.count(1)
        handler = type("Handler", (_Handler,), {"arm": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ArmStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def connect(self, subscription: str) -> Any:
        """otel-vm's clients (the real azure-mgmt ones) aimed at this stand-in: its URL, a static
        bearer token (the one pipeline step that cannot talk to http://), no polling delay."""
        from azure.core.pipeline.policies import SansIOHTTPPolicy

        from otel_run.vm._azure import connect

        class StaticBearer(SansIOHTTPPolicy):  # type: ignore[misc]
            def on_request(self, request: Any) -> None:
                request.http_request.headers["Authorization"] = "Bearer stand-in"

        return connect(
            subscription,
            credential=object(),
            base_url=self.url,
            authentication_policy=StaticBearer(),
            polling_interval=0,
            retry_backoff_factor=0,
        )

    # what the tests read
    def puts(self) -> list[Request]:
        return [r for r in self.state.requests if r.method == "PUT"]

    def resource(self, kind: str, name: str) -> dict[str, Any] | None:
        for path, body in self.state.resources.items():
            if path.endswith(f"/{kind.lower()}/{name.lower()}"):
                return body
        return None

    def next_id(self) -> str:
        return f"op{next(self._ids)}"


class _Handler(BaseHTTPRequestHandler):
    arm: ArmStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    # ------------------------------------------------------------ dispatch

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        st = self.arm.state
        with st.lock:
            st.requests.append(Request(method, path, (query.get("api-version") or [""])[0], body))
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                return self._error(401, "AuthenticationFailed", "Authentication failed: no bearer token.")
            if st.throttle > 0:
                st.throttle -= 1
                return self._send(
                    429,
                    {"error": {"code": "TooManyRequests", "message": "The request is being throttled."}},
                    {"Retry-After": st.retry_after},
                )
            if path.startswith("/operations/"):
                return self._operation(path.rsplit("/", 1)[1])
            if path.startswith("/deletes/"):
                return self._delete_poll(path.rsplit("/", 1)[1])
            m = _GROUP.match(path)
            if not path.startswith("/subscriptions/") or m is None:
                return self._error(404, "InvalidResourceType", f"no such endpoint {path}")
            if m.group(1) != SUBSCRIPTION:
                return self._error(404, "SubscriptionNotFound", f"The subscription '{m.group(1)}' could not be found.")
            group = m.group(2).lower()
            rest = path[m.end() :]
            if not rest:
                return self._group(method, group, body)
            return self._resource(method, group, path.lower(), rest, body, query)

    # ------------------------------------------------------------ resource groups

    def _group(self, method: str, group: str, body: Any) -> None:
        st = self.arm.state
        if method == "PUT":
            location = (body or {}).get("location")
            if location not in REGIONS:
                return self._error(
                    400,
                    "LocationNotAvailableForResourceGroup",
                    f"The provided location '{location}' is not available for resource group. "
                    f"List of available regions is '{','.join(REGIONS)}'.",
                )
            if group in st.deleting:
                return self._error(409, "ResourceGroupBeingDeleted", f"The resource group '{group}' is being deleted.")
            existed = group in st.groups
            st.groups[group] = {**body, "name": group, "properties": {"provisioningState": "Succeeded"}}
            return self._send(200 if existed else 201, st.groups[group])
        if method in ("GET", "HEAD"):
            if group not in st.groups:
                return self._error(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
            return self._send(200, st.groups[group])
        if method == "DELETE":
            if group not in st.groups:
                return self._error(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
            st.deleting[group] = 1
            return self._send(202, None, {"Location": f"{self.arm.url}/deletes/{group}", "Retry-After": "0"})
        return self._error(405, "MethodNotAllowed", method)

    def _delete_poll(self, group: str) -> None:
        st = self.arm.state
        if st.deleting.get(group, 0) > 0:
            st.deleting[group] -= 1
            return self._send(202, None, {"Location": f"{self.arm.url}/deletes/{group}", "Retry-After": "0"})
        st.deleting.pop(group, None)
        st.groups.pop(group, None)
        prefix = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}/"
        for path in [p for p in st.resources if p.startswith(prefix)]:
            del st.resources[path]
        return self._send(200, None)

    # ------------------------------------------------------------ resources

    def _resource(self, method: str, group: str, path: str, rest: str, body: Any, query: dict[str, list[str]]) -> None:
        st = self.arm.state
        if group not in st.groups:
            return self._error(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
        action = None
        if method == "POST" and path.rsplit("/", 1)[1] in ("deallocate", "start"):
            path, action = path.rsplit("/", 1)
        if method == "GET":
            if path not in st.resources:
                return self._error(404, "ResourceNotFound", f"The Resource '{rest}' was not found.")
            return self._send(200, self._view(path, expand="instanceView" in (query.get("$expand") or [""])[0]))
        if method == "PUT":
            if group in st.deleting:
                return self._error(409, "ResourceGroupBeingDeleted", f"The resource group '{group}' is being deleted.")
            if any(op.resource == path and op.polls < 1 for op in st.operations.values()):
                return self._error(409, "AnotherOperationInProgress", f"Another operation on '{rest}' is in progress.")
            existed = path in st.resources
            resource = {**body, "id": urlsplit(self.path).path, "name": urlsplit(self.path).path.rsplit("/", 1)[1]}
            resource.setdefault("properties", {})["provisioningState"] = "Updating" if existed else "Creating"
            resource["properties"].pop("customData", None)
            if "/publicipaddresses/" in path:
                resource["properties"]["ipAddress"] = PUBLIC_ADDRESS
            if "/virtualmachines/" in path:
                resource["_power"] = "starting"
                resource["properties"]["osProfile"] = {
                    k: v for k, v in resource["properties"].get("osProfile", {}).items() if k != "customData"
                }
            st.resources[path] = resource
            op = self._start(path, fail=st.fail.pop(resource["name"], None), power="running")
            return self._send(201 if not existed else 200, self._view(path), self._async_headers(op, location=False))
        if method == "POST" and action:
            if path not in st.resources:
                return self._error(404, "ResourceNotFound", f"The Resource '{rest}' was not found.")
            st.resources[path]["_power"] = "deallocating" if action == "deallocate" else "starting"
            op = self._start(path, power="deallocated" if action == "deallocate" else "running")
            return self._send(202, None, self._async_headers(op, location=True))
        return self._error(405, "MethodNotAllowed", f"{method} {rest}")

    def _start(self, path: str, fail: tuple[str, str] | None = None, power: str | None = None) -> str:
        op_id = self.arm.next_id()
        self.arm.state.operations[op_id] = Operation(path, fail=fail, power=power)
        return op_id

    def _async_headers(self, op_id: str, location: bool) -> dict[str, str]:
        headers = {"Azure-AsyncOperation": f"{self.arm.url}/operations/{op_id}", "Retry-After": "0"}
        if location:
            headers["Location"] = f"{self.arm.url}/operations/{op_id}?result=1"
        return headers

    def _operation(self, op_id: str) -> None:
        st = self.arm.state
        op = st.operations.get(op_id)
        if op is None:
            return self._error(404, "OperationNotFound", op_id)
        if self.path.endswith("?result=1"):  # the Location of a POST, read once the operation is done
            return self._send(200, {})
        if op.polls == 0:
            op.polls += 1
            return self._send(200, {"status": "InProgress"}, {"Retry-After": "0"})
        resource = st.resources.get(op.resource)
        if op.fail:
            if resource is not None:
                resource["properties"]["provisioningState"] = "Failed"
            code, message = op.fail
            return self._send(200, {"status": "Failed", "error": {"code": code, "message": message}})
        if resource is not None:
            resource["properties"]["provisioningState"] = op.then
            if op.power:
                resource["_power"] = op.power
        return self._send(200, {"status": "Succeeded"})

    def _view(self, path: str, expand: bool = False) -> dict[str, Any]:
        resource = self.arm.state.resources[path]
        view = {k: v for k, v in resource.items() if not k.startswith("_")}
        if expand and "_power" in resource:
            view = {**view, "properties": dict(view["properties"])}
            view["properties"]["instanceView"] = {
                "statuses": [
                    {"code": f"ProvisioningState/{resource['properties']['provisioningState'].lower()}"},
                    {"code": f"PowerState/{resource['_power']}"},
                ]
            }
        return view

    # ------------------------------------------------------------ responses

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": {"code": code, "message": message}})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", "standin")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
