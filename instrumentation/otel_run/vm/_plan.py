"""The benchmark VM as ARM resources: what ``otel-vm create`` asks Azure for, in order.

Pure data: :func:`plan` turns :class:`Settings` into the ordered list of
:class:`Step` (one ``PUT`` each, with the real ARM resource body in REST shape),
which ``otel-vm create --dry-run`` prints and :mod:`._azure` sends through the
SDK. The api-versions are the ones the installed SDK operations send (the tests
check that the stand-in receives them), so the dry run's URLs are the real ones.

Locked down by construction: the network security group's only inbound rule is
TCP 22 from one address (``allow_from``, never ``*``), the VM takes an SSH key
and no password, no port of Grafana or the collector is published (they listen
on the VM's loopback and are reached through ``otel-vm tunnel``), and a
DevTestLab schedule deallocates the VM every night.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

ARM = "https://management.azure.com"
API_GROUP = "2025-04-01"  # azure-mgmt-resource 26: ResourceManagementClient's api_version
API_NETWORK = "2026-03-01"  # azure-mgmt-network 33: every operation used here
API_COMPUTE = "2026-04-01"  # azure-mgmt-compute 39: virtualMachines
API_SCHEDULE = "2018-09-15"  # Microsoft.DevTestLab/schedules (auto-shutdown of a VM outside a lab)

DEFAULT_GROUP = "otel-run-bench"
DEFAULT_NAME = "otel-bench"
DEFAULT_REGION = "westeurope"
DEFAULT_SIZE = "Standard_D2s_v5"  # non-burstable, 2 vCPU, 8 GiB (the seed's benchmark machine)
DEFAULT_USER = "bench"
DEFAULT_SHUTDOWN = "2100"  # HHmm, UTC
DEFAULT_DAYS = 7  # otel-run:expires = created + this many days
IMAGE = {"publisher": "Debian", "offer": "debian-12", "sku": "12-gen2", "version": "latest"}
VNET_PREFIX = "10.42.0.0/16"
SUBNET_PREFIX = "10.42.0.0/24"
SSH_PORT = "22"

TAG_OWNER = "otel-run:owner"
TAG_EXPIRES = "otel-run:expires"

_SUBSCRIPTION = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]|[A-Za-z0-9]")
_REGION = re.compile(r"[a-z][a-z0-9]{2,40}")
_SHUTDOWN = re.compile(r"([01][0-9]|2[0-3])[0-5][0-9]")
# addresses Azure never sees a connection come from (RFC 1918, shared CGNAT space, IPv6 unique local)
_LOCAL = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


class PlanError(ValueError):
    """A setting Azure would refuse, named: ``str()`` is the message (flag and what is wrong)."""


@dataclass(frozen=True)
class Settings:
    """What the VM is made of; every field has a flag of ``otel-vm``."""

    subscription: str
    allow_from: str
    ssh_public_key: str
    owner: str
    expires: str
    group: str = DEFAULT_GROUP
    name: str = DEFAULT_NAME
    region: str = DEFAULT_REGION
    size: str = DEFAULT_SIZE
    user: str = DEFAULT_USER
    shutdown: str = DEFAULT_SHUTDOWN
    tags: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`PlanError` naming the first setting Azure would refuse."""
        if not _SUBSCRIPTION.fullmatch(self.subscription):
            raise PlanError(f"--subscription: {self.subscription!r} is not a subscription id (a GUID)")
        for flag, value in (("--group", self.group), ("--name", self.name)):
            if not _NAME.fullmatch(value):
                raise PlanError(f"{flag}: {value!r} is not an Azure resource name (letters, digits, . _ -; 1-64)")
        if not _REGION.fullmatch(self.region):
            raise PlanError(f"--region: {self.region!r} is not a region name (such as westeurope, eastus)")
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.size):
            raise PlanError(f"--size: {self.size!r} is not a VM size (such as {DEFAULT_SIZE})")
        if not _SHUTDOWN.fullmatch(self.shutdown):
            raise PlanError(f"--shutdown: {self.shutdown!r} is not a time of day as HHmm (UTC)")
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", self.user) or self.user in ("root", "admin"):
            raise PlanError(f"--user: {self.user!r} is not an admin user name Azure allows")
        source_prefix(self.allow_from)
        if not self.ssh_public_key.startswith(("ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-")):
            raise PlanError("--ssh-key: not an OpenSSH public key (ssh-ed25519 / ssh-rsa / ecdsa-sha2-…)")

    @property
    def group_path(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"

    def resource_id(self, provider: str, kind: str, name: str) -> str:
        return f"{self.group_path}/providers/{provider}/{kind}/{name}"

    @property
    def vm_id(self) -> str:
        return self.resource_id("Microsoft.Compute", "virtualMachines", self.name)

    @property
    def public_ip_name(self) -> str:
        return f"{self.name}-ip"


@dataclass(frozen=True)
class Step:
    """One resource of the plan: ``PUT path?api-version=…`` with ``body``."""

    kind: str  # group, vnet, nsg, ip, nic, vm, schedule
    title: str  # what the progress line calls it
    name: str
    path: str
    api_version: str
    body: dict[str, Any]

    @property
    def url(self) -> str:
        return f"{ARM}{self.path}?api-version={self.api_version}"

    def request(self) -> dict[str, Any]:
        """The step as the dry run prints it (a contract: method, url, body)."""
        return {"method": "PUT", "url": self.url, "body": self.body}


def source_prefix(address: str) -> str:
    """``--allow-from``: one IPv4/IPv6 address (or a /32, /128) as an NSG source prefix; never ``*``."""
    try:
        network = ipaddress.ip_network(address.strip(), strict=True)
    except ValueError:
        raise PlanError(f"--allow-from: {address!r} is not an IP address") from None
    if network.num_addresses != 1:
        raise PlanError(f"--allow-from: {address!r} is a range: SSH opens to one address only")
    ip = network.network_address
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast or any(ip in n for n in _LOCAL):
        raise PlanError(f"--allow-from: {address!r} is not a public address (Azure sees your public one)")
    return f"{network.network_address}/{network.max_prefixlen}"


def plan(settings: Settings, custom_data_b64: str) -> list[Step]:
    """The resources of the VM, in the order they depend on each other.

    Args:
        settings: the VM (validated by the caller).
        custom_data_b64: the rendered cloud-init, base64 (``osProfile.customData``).
    """
    s = settings
    tags = {**s.tags, TAG_OWNER: s.owner, TAG_EXPIRES: s.expires}
    vnet, nsg, nic = f"{s.name}-vnet", f"{s.name}-nsg", f"{s.name}-nic"
    vnet_id = s.resource_id("Microsoft.Network", "virtualNetworks", vnet)
    nsg_id = s.resource_id("Microsoft.Network", "networkSecurityGroups", nsg)
    ip_id = s.resource_id("Microsoft.Network", "publicIPAddresses", s.public_ip_name)
    nic_id = s.resource_id("Microsoft.Network", "networkInterfaces", nic)
    located = {"location": s.region, "tags": tags}
    ssh_rule = {
        "name": "ssh-from-one-address",
        "properties": {
            "description": "otel-vm: SSH from the address given at create (--allow-from), nothing else",
            "protocol": "Tcp",
            "access": "Allow",
            "direction": "Inbound",
            "priority": 1000,
            "sourceAddressPrefix": source_prefix(s.allow_from),
            "sourcePortRange": "*",
            "destinationAddressPrefix": "*",
            "destinationPortRange": SSH_PORT,
        },
    }
    return [
        Step("group", "resource group", s.group, s.group_path, API_GROUP, dict(located)),
        Step(
            "vnet",
            "virtual network",
            vnet,
            vnet_id,
            API_NETWORK,
            {
                **located,
                "properties": {
                    "addressSpace": {"addressPrefixes": [VNET_PREFIX]},
                    "subnets": [{"name": "default", "properties": {"addressPrefix": SUBNET_PREFIX}}],
                },
            },
        ),
        Step(
            "nsg",
            "network security group",
            nsg,
            nsg_id,
            API_NETWORK,
            {**located, "properties": {"securityRules": [ssh_rule]}},
        ),
        Step(
            "ip",
            "public IP address",
            s.public_ip_name,
            ip_id,
            API_NETWORK,
            {
                **located,
                "sku": {"name": "Standard", "tier": "Regional"},  # Basic public IPs are retired
                "properties": {"publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4"},
            },
        ),
        Step(
            "nic",
            "network interface",
            nic,
            nic_id,
            API_NETWORK,
            {
                **located,
                "properties": {
                    "networkSecurityGroup": {"id": nsg_id},
                    "ipConfigurations": [
                        {
                            "name": "ipconfig1",
                            "properties": {
                                "privateIPAllocationMethod": "Dynamic",
                                "subnet": {"id": f"{vnet_id}/subnets/default"},
                                "publicIPAddress": {"id": ip_id},
                            },
                        }
                    ],
                },
            },
        ),
        Step(
            "vm",
            "virtual machine",
            s.name,
            s.vm_id,
            API_COMPUTE,
            {
                **located,
                "properties": {
                    "hardwareProfile": {"vmSize": s.size},
                    "storageProfile": {
                        "imageReference": dict(IMAGE),
                        "osDisk": {
                            "createOption": "FromImage",
                            "managedDisk": {"storageAccountType": "Premium_LRS"},
                            "deleteOption": "Delete",
                        },
                    },
                    "osProfile": {
                        "computerName": s.name,
                        "adminUsername": s.user,
                        "customData": custom_data_b64,
                        "linuxConfiguration": {
                            "disablePasswordAuthentication": True,
                            "ssh": {
                                "publicKeys": [
                                    {"path": f"/home/{s.user}/.ssh/authorized_keys", "keyData": s.ssh_public_key}
                                ]
                            },
                        },
                    },
                    "networkProfile": {
                        "networkInterfaces": [{"id": nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}]
                    },
                },
            },
        ),
        Step(
            "schedule",
            "auto-shutdown schedule",
            f"shutdown-computevm-{s.name}",
            f"{s.group_path}/providers/Microsoft.DevTestLab/schedules/shutdown-computevm-{s.name}",
            API_SCHEDULE,
            {
                **located,
                "properties": {
                    "status": "Enabled",
                    "taskType": "ComputeVmShutdownTask",
                    "dailyRecurrence": {"time": s.shutdown},
                    "timeZoneId": "UTC",
                    "targetResourceId": s.vm_id,
                    "notificationSettings": {"status": "Disabled", "timeInMinutes": 30},
                },
            },
        ),
    ]
