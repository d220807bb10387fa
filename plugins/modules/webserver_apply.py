#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: webserver_apply
short_description: The file work of the nginx and apache roles in one read-only probe and one tested switch
version_added: 0.1.0
description:
  - Role-internal step of the M(portail.https.nginx) and M(portail.https.apache) roles (their variables are the
    interface); it runs as an action plugin, on the controller, and starts no Python on the host.
  - One read-only shell command reads the package state, the enabled modules, which certificates and keys
    exist, the server version and the SHA-256, mode and owner of every managed file and link (never through
    a symlink). The templates are rendered on the controller with what it found (under O(facts_var)).
  - Only what differs is sent, in one script that refuses directories not owned by root or writable by group
    or others, writes each file next to its destination, renames it over it, enables missing modules and runs
    O(validate_command); if the test fails, every destination gets its previous state back.
  - The package module runs only when a package is missing, the file module only for a missing or wrong
    directory.
author:
  - portail.https contributors (@portail)
extends_documentation_fragment:
  - portail.https.attributes
  - portail.https.attributes.action
options:
  server:
    description: Which server the configuration is for (names the messages).
    type: str
    required: true
    choices: [nginx, apache]
  plan:
    description: The result of the P(portail.https.webserver_plan#filter) filter.
    type: dict
    required: true
  facts_var:
    description: Variable name under which the templates see what the probe found.
    type: str
    required: true
  packages:
    description: Packages that must be installed.
    type: list
    elements: str
    default: []
  install_packages:
    description: Install missing O(packages).
    type: bool
    default: true
  version_command:
    description: Shell command whose output names the server and OpenSSL versions.
    type: str
    default: "true"
  root_dirs:
    description: Directories that must exist, owned by root, mode 0755.
    type: list
    elements: str
    default: []
  site_template:
    description: Template of one site, rendered with C(item) set to the site's plan.
    type: str
    required: true
  sites_dir:
    description: Directory of the site files (required, here or in the host's O(layouts) entry).
    type: str
    default: ""
  sites_enabled_dir:
    description: Directory of the links that enable sites (empty when the layout has none).
    type: str
    default: ""
  site_prefix:
    description: File name prefix of the site files.
    type: str
    default: portail-
  templates:
    description: Further files, each a dict with C(src) (template) and C(dest).
    type: list
    elements: dict
    default: []
  absent:
    description: Further paths that must not exist.
    type: list
    elements: str
    default: []
  modules:
    description: Server modules that must be enabled.
    type: list
    elements: str
    default: []
  mods_dir:
    description: Directory where an enabled module has its C(<name>.load) file.
    type: str
    default: ""
  enable_command:
    description: Command that enables a module (C(a2enmod)).
    type: str
    default: ""
  validate_command:
    description: The server's configuration test, as an argument list.
    type: list
    elements: str
    required: true
  service:
    description:
      - The server's service. The probe reads its state (systemd, or an init script); only when it is not
        as wanted, or cannot be told that way, does C(ansible.builtin.service) run, after the configuration
        is in place. Empty leaves the service alone.
    type: str
    default: ""
  service_state:
    description: Whether the service must be running.
    type: str
    choices: [started, stopped]
    default: started
  service_enabled:
    description: Whether the service starts at boot; unset leaves the boot setting alone.
    type: bool
  layouts:
    description:
      - OS family (C(Debian), C(RedHat)) to the options that differ there (among O(packages), O(version_command),
        O(root_dirs), O(sites_dir), O(sites_enabled_dir), O(templates), O(absent), O(modules), O(mods_dir),
        O(enable_command), O(validate_command), O(service)); they replace the options given directly.
      - Without O(os_family), the probe also reads C(/etc/os-release) (no setup run needed) and starts with the
        first layout, which is also the one used for a family not listed; a host of another listed family
        costs one more probe.
    type: dict
    default: {}
  os_family:
    description: The host's OS family when known (gathered facts); picks the layout without reading C(/etc/os-release).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The nginx role's step (see roles/nginx/tasks/main.yml)
  portail.https.webserver_apply:
    server: nginx
    plan: "{{ __nginx_plan }}"
    facts_var: __nginx_facts
    packages: [nginx]
    root_dirs: [/var/www/portail/acme-challenge]
    site_template: site.conf.j2
    sites_dir: /etc/nginx/sites-available
    sites_enabled_dir: /etc/nginx/sites-enabled
    validate_command: [/usr/sbin/nginx, -t]
"""

RETURN = r"""
facts:
  description: What the probe found (C(tls_sites), C(tls), C(nginx_version), C(http2_directive)).
  returned: success
  type: dict
files_changed:
  description: Files written (or that would be, in check mode).
  returned: success
  type: list
  elements: str
links_changed:
  description: Links made.
  returned: success
  type: list
  elements: str
removed:
  description: Paths removed.
  returned: success
  type: list
  elements: str
modules_enabled:
  description: Modules enabled.
  returned: success
  type: list
  elements: str
packages_installed:
  description: Packages the package module was asked to install.
  returned: when a package was missing
  type: list
  elements: str
validated:
  description:
    - Whether this run wrote the configuration and the server's own test (O(validate_command)) accepted it as a
      whole; the roles' reload handlers then skip their own test of the same files.
  returned: success
  type: bool
os_family:
  description: The OS family whose layout was used.
  returned: when O(layouts) is given
  type: str
service_started:
  description:
    - Whether the probe found the service stopped and this run started it, after writing the configuration (it
      then runs with the new files; a reload would add nothing).
  returned: success
  type: bool
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "server": {"type": "str", "required": True, "choices": ["nginx", "apache"]},
    "plan": {"type": "dict", "required": True},
    "facts_var": {"type": "str", "required": True},
    "packages": {"type": "list", "elements": "str", "default": []},
    "install_packages": {"type": "bool", "default": True},
    "version_command": {"type": "str", "default": "true"},
    "root_dirs": {"type": "list", "elements": "str", "default": []},
    "site_template": {"type": "str", "required": True},
    "sites_dir": {"type": "str", "default": ""},
    "sites_enabled_dir": {"type": "str", "default": ""},
    "site_prefix": {"type": "str", "default": "portail-"},
    "templates": {"type": "list", "elements": "dict", "default": []},
    "absent": {"type": "list", "elements": "str", "default": []},
    "modules": {"type": "list", "elements": "str", "default": []},
    "mods_dir": {"type": "str", "default": ""},
    "enable_command": {"type": "str", "default": ""},
    "validate_command": {"type": "list", "elements": "str", "required": True},
    "service": {"type": "str", "default": ""},
    "service_state": {"type": "str", "default": "started", "choices": ["started", "stopped"]},
    "service_enabled": {"type": "bool"},
    "layouts": {"type": "dict", "default": {}},
    "os_family": {"type": "str", "default": ""},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="portail.https.webserver_apply runs as an action plugin on the controller")


if __name__ == "__main__":
    main()
