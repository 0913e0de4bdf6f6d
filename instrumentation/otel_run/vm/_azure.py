"""The Azure boundary of ``otel-vm``: the official management SDKs, their pollers, their errors.

Every call to Azure goes through :class:`Azure`, which drives ``azure-mgmt-resource``,
``azure-mgmt-network`` and ``azure-mgmt-compute`` (credentials from ``azure-identity``'s
``DefaultAzureCredential``), follows each long-running operation through the SDK's ARM poller
with a progress line, and maps the SDK's exceptions to one :class:`AzureError` line naming the
resource (``raise … from exc``, as httpx maps its transports' errors).

Idempotent by reading first: ``create`` GETs each resource of the plan and PUTs only what is
missing or left ``Failed`` (a half-created group is completed, nothing is duplicated), plus the
network security group when ``--allow-from`` changed, so a second ``create`` changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otel_run._errors import OtelRunError
from otel_run.vm._plan import API_SCHEDULE, Settings, Step

Progress = Callable[[str], None]

POLL_NOTE_S = 15.0  # a long-running operation says it is still running this often


class AzureError(OtelRunError):
    """A request Azure refused or could not take; ``str()`` is one line."""


@dataclass
class Clients:
    """The three management clients, sharing one credential and pipeline settings."""

    resources: Any  # azure.mgmt.resource.resources.ResourceManagementClient
    network: Any  # azure.mgmt.network.NetworkManagementClient
    compute: Any  # azure.mgmt.compute.ComputeManagementClient


def connect(subscription: str, *, credential: Any = None, base_url: str | None = None, **kwargs: Any) -> Clients:
    """Clients of ``subscription``: ``DefaultAzureCredential`` unless ``credential`` is given.

    ``base_url`` and ``kwargs`` (``polling_interval``, ``retry_*``, ``authentication_policy``)
    go to every client; the tests point them at a loopback stand-in of ARM.
    """
    try:
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient
        from azure.mgmt.resource.resources import ResourceManagementClient
    except ImportError as exc:
        raise AzureError(f"otel-vm needs the Azure SDKs ({exc.name} is missing): pip install 'otel-run[vm]'") from exc

    import logging

    # the SDK logs every request and response at INFO (azure.core's http_logging_policy): where a host
    # configured the root logger (codeflash does, with rich), that would land in otel-vm's output
    logging.getLogger("azure").setLevel(logging.WARNING)
    # DefaultAzureCredential logs its whole chain (a dozen lines) at WARNING before it raises; the raise
    # becomes otel-vm's one line
    logging.getLogger("azure.identity").setLevel(logging.ERROR)
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    if base_url:
        kwargs["base_url"] = base_url
    return Clients(
        ResourceManagementClient(credential, subscription, **kwargs),
        NetworkManagementClient(credential, subscription, **kwargs),
        ComputeManagementClient(credential, subscription, **kwargs),
    )


@dataclass(frozen=True)
class VmStatus:
    """What ``otel-vm status`` tells."""

    exists: bool
    power: str = "absent"  # running, deallocated, stopped, starting, …
    provisioning: str = ""
    address: str = ""
    size: str = ""
    expires: str = ""


class Azure:
    """The VM's resource group as seen through the SDK."""

    def __init__(self, clients: Clients, settings: Settings, progress: Progress) -> None:
        self.clients = clients
        self.settings = settings
        self.progress = progress

    # ------------------------------------------------------------ create

    def create(self, steps: list[Step]) -> list[str]:
        """Make what is missing of ``steps``, in order; returns what it changed (empty: nothing).

        Raises:
            AzureError: naming the step that failed and what already exists, so the user
                knows the group is half-made and that ``create`` again completes it.
        """
        changed: list[str] = []
        done: list[str] = []
        for step in steps:
            what = f"{step.title} {step.name}"
            try:
                existing = self._get(step)
                reason = _why_put(step, existing)
                if reason is None:
                    self.progress(f"{what}: exists")
                else:
                    self.progress(f"{what}: {reason} …")
                    started = time.monotonic()
                    self._put(step, what)
                    self.progress(f"{what}: done ({time.monotonic() - started:.1f} s)")
                    changed.append(what)
            except AzureError as exc:
                made = ", ".join(done) if done else "nothing"
                raise AzureError(
                    f"create stopped at the {what}: {exc}; the group holds: {made} "
                    "(`otel-vm create` again completes it, `otel-vm destroy` removes it)"
                ) from exc
            done.append(what)
        return changed

    def _get(self, step: Step) -> dict[str, Any] | None:
        c, rg = self.clients, self.settings.group
        getters: dict[str, Callable[[], Any]] = {
            "group": lambda: c.resources.resource_groups.get(rg),
            "vnet": lambda: c.network.virtual_networks.get(rg, step.name),
            "nsg": lambda: c.network.network_security_groups.get(rg, step.name),
            "ip": lambda: c.network.public_ip_addresses.get(rg, step.name),
            "nic": lambda: c.network.network_interfaces.get(rg, step.name),
            "vm": lambda: c.compute.virtual_machines.get(rg, step.name),
            "schedule": lambda: c.resources.resources.get_by_id(step.path, api_version=API_SCHEDULE),
        }
        return self._find(f"reading the {step.title}", getters[step.kind])

    def _put(self, step: Step, what: str) -> None:
        c, rg, body = self.clients, self.settings.group, step.body
        if step.kind == "group":  # not a long-running operation
            self._call(f"creating the {what}", lambda: c.resources.resource_groups.create_or_update(rg, body))
            return
        starters: dict[str, Callable[[], Any]] = {
            "vnet": lambda: c.network.virtual_networks.begin_create_or_update(rg, step.name, body),
            "nsg": lambda: c.network.network_security_groups.begin_create_or_update(rg, step.name, body),
            "ip": lambda: c.network.public_ip_addresses.begin_create_or_update(rg, step.name, body),
            "nic": lambda: c.network.network_interfaces.begin_create_or_update(rg, step.name, body),
            "vm": lambda: c.compute.virtual_machines.begin_create_or_update(rg, step.name, body),
            "schedule": lambda: c.resources.resources.begin_create_or_update_by_id(
                step.path, body, api_version=API_SCHEDULE
            ),
        }
        poller = self._call(f"creating the {what}", starters[step.kind])
        self._wait(poller, f"creating the {what}")

    # ------------------------------------------------------------ lifecycle

    def group_exists(self) -> bool:
        groups = self.clients.resources.resource_groups
        return self._find("reading the resource group", lambda: groups.get(self.settings.group)) is not None

    def status(self) -> VmStatus:
        """Power and provisioning state of the VM, its address and expiry tag."""
        s, c = self.settings, self.clients
        vm = self._find(
            "reading the virtual machine",
            lambda: c.compute.virtual_machines.get(s.group, s.name, expand="instanceView"),
        )
        if vm is None:
            return VmStatus(exists=False)
        props = vm.get("properties") or {}
        codes = [str(st.get("code", "")) for st in (props.get("instanceView") or {}).get("statuses") or []]
        power = next((code.split("/", 1)[1] for code in codes if code.startswith("PowerState/")), "unknown")
        ip = (
            self._find(
                "reading the public IP address", lambda: c.network.public_ip_addresses.get(s.group, s.public_ip_name)
            )
            or {}
        )
        return VmStatus(
            exists=True,
            power=power,
            provisioning=str(props.get("provisioningState", "")),
            address=str((ip.get("properties") or {}).get("ipAddress", "")),
            size=str((props.get("hardwareProfile") or {}).get("vmSize", "")),
            expires=str((vm.get("tags") or {}).get("otel-run:expires", "")),
        )

    def start(self) -> None:
        s, vms = self.settings, self.clients.compute.virtual_machines
        self._wait(self._call("starting the virtual machine", lambda: vms.begin_start(s.group, s.name)), "starting")

    def stop(self) -> None:
        """Deallocate: the VM stops and its compute is no longer billed (the disk and IP still are)."""
        s, vms = self.settings, self.clients.compute.virtual_machines
        poller = self._call("deallocating the virtual machine", lambda: vms.begin_deallocate(s.group, s.name))
        self._wait(poller, "deallocating")

    def destroy(self) -> None:
        """Delete the whole resource group (the VM, its disk, network and IP, the schedule)."""
        groups = self.clients.resources.resource_groups
        poller = self._call("deleting the resource group", lambda: groups.begin_delete(self.settings.group))
        self._wait(poller, f"deleting the resource group {self.settings.group}")

    # ------------------------------------------------------------ helpers

    def _wait(self, poller: Any, doing: str) -> None:
        """Follow a long-running operation through the SDK's poller, saying it is alive."""
        started = time.monotonic()
        while True:
            self._call(doing, lambda: poller.wait(POLL_NOTE_S))
            if poller.done():
                break
            self.progress(f"{doing}: still running ({time.monotonic() - started:.0f} s, {poller.status()})")
        self._call(doing, poller.result)

    def _find(self, doing: str, get: Callable[[], Any]) -> dict[str, Any] | None:
        """What ``get`` reads, as a dict; None when the resource (or its group) does not exist. A
        subscription that does not exist is an error, not an empty answer."""
        from azure.core.exceptions import ResourceNotFoundError

        def found() -> Any:
            try:
                return get()
            except ResourceNotFoundError as exc:
                if _error_code(exc) in ("SubscriptionNotFound", "InvalidSubscriptionId"):
                    raise
                return None

        value = self._call(doing, found)
        return None if value is None else _as_dict(value)

    def _call(self, doing: str, fn: Callable[[], Any]) -> Any:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
        )

        try:
            return fn()
        except ClientAuthenticationError as exc:  # an HttpResponseError too: first
            if exc.status_code == 401 or exc.response is not None:
                raise AzureError(f"{doing}: Azure refused the credentials: {describe(exc)}") from exc
            raise AzureError(
                f"no Azure credentials: {_first_line(exc)} (run `az login`, or set AZURE_CLIENT_ID, "
                "AZURE_TENANT_ID and AZURE_CLIENT_SECRET)"
            ) from exc
        except HttpResponseError as exc:
            raise AzureError(f"{doing}: {describe(exc)}") from exc
        except ServiceRequestError as exc:
            raise AzureError(f"{doing}: cannot reach Azure Resource Manager: {_first_line(exc)}") from exc


def describe(exc: Exception) -> str:
    """One line for an SDK error: ``HTTP status (Code) message`` when ARM said why."""
    status = getattr(exc, "status_code", None)
    code = _error_code(exc)
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    if code and message:
        return f"{status} ({code}) {_first_line_of(str(message))}"
    return f"{status} {_first_line(exc)}" if status else _first_line(exc)


def _error_code(exc: Exception) -> str | None:
    error = getattr(exc, "error", None)
    return getattr(error, "code", None) if error is not None else None


def _first_line(exc: Exception) -> str:
    return _first_line_of(str(exc)) or type(exc).__name__


def _first_line_of(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _as_dict(value: Any) -> dict[str, Any]:
    if hasattr(value, "as_dict"):
        return dict(value.as_dict())
    return dict(value)


def _why_put(step: Step, existing: dict[str, Any] | None) -> str | None:
    """Why ``step`` must be PUT given what Azure holds (``None``: it is there, leave it)."""
    if existing is None:
        return "creating"
    state = str((existing.get("properties") or {}).get("provisioningState", "Succeeded"))
    if state in ("Failed", "Canceled"):
        return f"completing (left {state})"
    if step.kind == "group" and existing.get("location") not in (None, step.body["location"]):
        raise AzureError(
            f"the resource group {step.name} exists in {existing.get('location')}, not {step.body['location']} "
            "(give that --region, or another --group)"
        )
    if step.kind == "nsg" and _ssh_sources(existing) != _ssh_sources(step.body):
        return f"updating: SSH from {', '.join(_ssh_sources(step.body))} only"
    return None


def _ssh_sources(nsg: dict[str, Any]) -> list[str]:
    rules = (nsg.get("properties") or {}).get("securityRules") or []
    return sorted(
        str((r.get("properties") or {}).get("sourceAddressPrefix"))
        for r in rules
        if (r.get("properties") or {}).get("direction") == "Inbound"
    )
