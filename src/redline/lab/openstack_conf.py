"""The OpenStack lab's configuration files, as text. Pure: the caller writes them.

Facts behind the keys (shared/LAB-NOTES.md, "Real OpenStack compute control plane"): every
socket on 127.0.0.1; Nova's libvirt driver with QEMU TCG and cpu_mode none; privsep as root
without sudo; service-user tokens; graceful_shutdown_timeout so nova-compute obeys SIGTERM;
Neutron's API server alone (ML2 flat, no mechanism drivers, no agents, no RPC workers), which
Nova needs even for servers with `networks: "none"`.

The files are laid out as they would be on a real host — `<root>/etc/nova/nova.conf`,
`<root>/etc/keystone/keystone.conf`, `<root>/etc/neutron/neutron.conf`, … — so that the audit
reads this tree exactly as it reads `/` on a cloud's controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redline.lab.openstack_knobs import OpenStackKnobs

SERVICE_PROJECT = "service"
# The service users Keystone knows, one per API service (seed 000's layout; what DevStack does).
SERVICE_USERS = ("nova", "placement", "glance", "neutron")


@dataclass(frozen=True)
class Ports:
    keystone: int
    placement: int
    glance: int
    neutron: int
    nova_api: int
    rabbitmq: int
    memcached: int


@dataclass(frozen=True)
class Secrets:
    """Kept in the lab's config files (0600) and secrets file only; never in lab.json or a run folder."""

    admin_password: str
    service_password: str
    databases: dict[str, str]  # database name -> SQLAlchemy URL (with its password)
    rabbit_url: str  # transport_url


def keystone_url(p: Ports) -> str:
    return f"http://127.0.0.1:{p.keystone}/v3"


def _password_auth(p: Ports, user: str, s: Secrets) -> str:
    """A service user's keystoneauth password plugin lines (shared by every auth section)."""
    return f"""auth_url = {keystone_url(p)}
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = {SERVICE_PROJECT}
username = {user}
password = {s.service_password}
"""


def _authtoken(p: Ports, user: str, s: Secrets, memcached: bool) -> str:
    cache = f"memcached_servers = 127.0.0.1:{p.memcached}\n" if memcached else ""
    return f"www_authenticate_uri = {keystone_url(p)}\n{_password_auth(p, user, s)}service_token_roles_required = true\n{cache}"


def _service_auth(p: Ports, user: str, s: Secrets) -> str:
    return f"{_password_auth(p, user, s)}region_name = RegionOne\n"


def keystone_conf(k: OpenStackKnobs, d: Path, p: Ports, s: Secrets) -> str:
    cache = (
        f"enabled = true\nbackend = dogpile.cache.pymemcache\nmemcache_servers = 127.0.0.1:{p.memcached}\n"
        if k.keystone_cache == "memcached"
        else "enabled = false\n"
    )
    return f"""[DEFAULT]
log_file = {d}/log/keystone.log
[database]
connection = {s.databases["keystone"]}
[token]
provider = fernet
[fernet_tokens]
key_repository = {d}/keystone/fernet-keys
[credential]
key_repository = {d}/keystone/credential-keys
[cache]
{cache}"""


def placement_conf(d: Path, p: Ports, s: Secrets) -> str:
    return f"""[DEFAULT]
log_file = {d}/log/placement.log
[placement_database]
connection = {s.databases["placement"]}
[api]
auth_strategy = keystone
[keystone_authtoken]
{_authtoken(p, "placement", s, True)}"""


def glance_conf(d: Path, p: Ports, s: Secrets) -> str:
    return f"""[DEFAULT]
log_file = {d}/log/glance.log
enabled_backends = fs:file
bind_host = 127.0.0.1
[database]
connection = {s.databases["glance"]}
[keystone_authtoken]
{_authtoken(p, "glance", s, True)}
[paste_deploy]
flavor = keystone
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {d}/glance/images
[os_glance_staging_store]
filesystem_store_datadir = {d}/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = {d}/glance/tasks
[oslo_concurrency]
lock_path = {d}/glance/lock
"""


def neutron_conf(k: OpenStackKnobs, d: Path, p: Ports, s: Secrets) -> str:
    return f"""[DEFAULT]
log_file = {d}/log/neutron.log
bind_host = 127.0.0.1
core_plugin = ml2
service_plugins =
auth_strategy = keystone
api_workers = {k.neutron_api_workers}
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = {s.rabbit_url}
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
state_path = {d}/neutron
[database]
connection = {s.databases["neutron"]}
[keystone_authtoken]
{_authtoken(p, "neutron", s, True)}
[oslo_concurrency]
lock_path = {d}/neutron/lock
[oslo_messaging_notifications]
driver = noop
"""


ML2_CONF = """[ml2]
type_drivers = flat
tenant_network_types =
mechanism_drivers =
extension_drivers =
[ml2_type_flat]
flat_networks = *
"""


def nova_conf(k: OpenStackKnobs, d: Path, p: Ports, s: Secrets, venv: Path, virt_type: str, host: str) -> str:
    return f"""[DEFAULT]
host = {host}
my_ip = 127.0.0.1
state_path = {d}/nova
instances_path = {d}/nova/instances
transport_url = {s.rabbit_url}
compute_driver = libvirt.LibvirtDriver
graceful_shutdown_timeout = 5
osapi_compute_listen = 127.0.0.1
metadata_listen = 127.0.0.1
# The lab's only compute node: report to the scheduler at once, not after the default minute.
heal_instance_info_cache_interval = -1
[api]
auth_strategy = keystone
[api_database]
connection = {s.databases["nova_api"]}
[database]
connection = {s.databases["nova"]}
[conductor]
workers = {k.conductor_workers}
[scheduler]
workers = {k.scheduler_workers}
discover_hosts_in_cells_interval = -1
[keystone_authtoken]
{_authtoken(p, "nova", s, True)}
[service_user]
send_service_user_token = true
{_service_auth(p, "nova", s)}
[placement]
{_service_auth(p, "placement", s)}
[neutron]
{_service_auth(p, "neutron", s)}
[glance]
region_name = RegionOne
[libvirt]
virt_type = {virt_type}
connection_uri = qemu:///system
cpu_mode = none
[nova_sys_admin]
helper_command = {venv}/bin/privsep-helper --config-file {d}/etc/nova/nova.conf
[oslo_concurrency]
lock_path = {d}/nova/lock
[oslo_messaging_notifications]
driver = noop
[vnc]
enabled = false
[spice]
enabled = false
[wsgi]
api_paste_config = {d}/etc/nova/api-paste.ini
"""


def nova_api_conf(d: Path) -> str:
    # Without an explicit log file nova-api under a WSGI server logs to a file named after
    # the importing frame, "<frozen importlib._bootstrap>.log" (LAB-NOTES).
    return f"[DEFAULT]\nlog_file = {d}/log/nova-api.log\n"


def clouds_yaml(cloud: str, p: Ports, s: Secrets) -> str:
    return f"""clouds:
  {cloud}:
    auth:
      auth_url: {keystone_url(p)}
      username: admin
      password: {s.admin_password}
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
    interface: public
"""


def wsgi_wrapper(module: str) -> str:
    """A module gunicorn loads instead of the service's own: oslo.config parses sys.argv in
    Neutron and Placement, and would refuse gunicorn's own arguments."""
    return f"import sys\n\nsys.argv = sys.argv[:1]\nfrom {module} import application  # noqa: E402,F401\n"


# (service, its config directory under etc/, the module gunicorn serves)
WSGI_APPS = (
    ("keystone", "keystone", "keystone.wsgi.api"),
    ("placement", "placement", "placement.wsgi.api"),
    ("glance", "glance", "glance.wsgi.api"),
    ("neutron", "neutron", "neutron.wsgi.api"),
    ("nova-api", "nova", "nova.wsgi.osapi_compute"),
)


def wsgi_workers(k: OpenStackKnobs, name: str) -> int:
    return {"keystone": k.keystone_processes, "neutron": k.neutron_api_workers, "nova-api": k.nova_api_workers}.get(
        name, 1
    )


def gunicorn_conf(name: str, port: int, workers: int, wsgi_dir: Path) -> str:
    """gunicorn's settings for one API (a file, so that the audit reads the process count
    where an operator's deployment keeps it). Sync workers: one request per process."""
    return f"""# redline lab openstack: {name}
bind = "127.0.0.1:{port}"
workers = {workers}
timeout = 300
graceful_timeout = 5
pythonpath = "{wsgi_dir}"
proc_name = "{name}"
"""
