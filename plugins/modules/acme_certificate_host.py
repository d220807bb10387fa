#!/usr/bin/python
# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: acme_certificate_host
short_description: Managed-host steps of M(portail.https.acme_certificate)
version_added: 0.1.0
description:
  - Internal helper run by the M(portail.https.acme_certificate) action plugin on the managed host.
    Use M(portail.https.acme_certificate) instead of calling it directly.
  - V(inspect) reads the current certificate and key (type, names, validity, serial, authority key id,
    whether they match) and checks the webroots, changing nothing and returning no key material.
  - V(prepare) makes sure a pending private key exists next to O(key_path) (suffix C(.pending), mode 0600,
    generated on the host and never returned) and returns a CSR built from it.
  - V(deploy) writes certificate, chain and full chain atomically (temporary file in the same directory,
    fsync, rename), moves the pending key into place in the same step and keeps the previous files as
    C(.bak).
  - V(discard) removes the pending key and directories that V(prepare) created in a failed run.
  - V(http01_place) / V(http01_cleanup) write and remove token files under C(.well-known/acme-challenge/).
  - V(alpn_start) / V(alpn_stop) start and stop a short-lived detached TLS-ALPN-01 (RFC 8737) responder.
author:
  - portail.https contributors (@portail)
requirements:
  - python >= 3.9
  - cryptography
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
options:
  step:
    description: What to do.
    type: str
    required: true
    choices: [inspect, prepare, deploy, discard, http01_place, http01_cleanup, alpn_start, alpn_stop]
  key_path:
    description: Path of the certificate's private key.
    type: path
  key_type:
    description: Type of a newly generated key.
    type: str
    choices: [ec256, ec384, rsa2048, rsa3072, rsa4096]
    default: ec256
  cert_path:
    description: Path of the certificate (leaf only).
    type: path
  chain_path:
    description: Path of the intermediate chain.
    type: path
  fullchain_path:
    description: Path of leaf plus chain.
    type: path
  names:
    description: Names (DNS names and IP addresses) of the CSR.
    type: list
    elements: str
  owner:
    description: Owner of the deployed files.
    type: str
  group:
    description: Group of the deployed files.
    type: str
  mode:
    description: Mode of the certificate, chain and full chain files.
    type: raw
    default: "0644"
  key_mode:
    description: Mode of the private key.
    type: raw
    default: "0600"
  backup:
    description: Keep the previous files as C(.bak).
    type: bool
    default: true
  fix_attributes:
    description: With V(inspect), apply O(owner), O(group), O(mode) and O(key_mode) to existing files.
    type: bool
    default: false
  prepare_if_due:
    description:
      - With V(inspect), also do what V(prepare) does when the local renewal rules (missing files, names or
        key type changed, key mismatch, less than O(renew_remaining_fraction) of the lifetime left, O(force))
        say the certificate is due, and return the CSR as RV(prepared). Saves one round trip per issuance.
      - Ignored in check mode and when a webroot is missing.
    type: bool
    default: false
  renew_remaining_fraction:
    description: With O(prepare_if_due), the fraction of the lifetime below which the certificate is due.
    type: float
    default: 0.3333333333333333
  force:
    description: With O(prepare_if_due), treat the certificate as due.
    type: bool
    default: false
  cert_pem:
    description: Issued certificate (PEM; the first certificate is the leaf) for V(deploy).
    type: str
  chain_pem:
    description: Issuer chain (PEM) for V(deploy).
    type: str
    default: ""
  meta:
    description: ACME facts stored next to the certificate (C(<cert_path>.acme.json)) by V(deploy).
    type: dict
  pending_created:
    description: For V(discard), whether the pending key was created by this run.
    type: bool
    default: false
  created_dirs:
    description:
      - For V(discard) and V(http01_cleanup), directories created by this run (removed when empty).
      - For V(deploy), directories V(http01_place) created, removed with O(files) once the certificate is in place.
    type: list
    elements: path
    default: []
  webroot:
    description: Web roots for http-01.
    type: list
    elements: path
    default: []
  challenge_dir:
    description: Directories served as C(/.well-known/acme-challenge/) for http-01 (token files go straight in).
    type: list
    elements: path
    default: []
  tokens:
    description: For V(http01_place), the C(token) / C(content) pairs to write.
    type: list
    elements: dict
    default: []
  files:
    description: For V(http01_cleanup) and V(deploy), the http-01 token files to remove.
    type: list
    elements: path
    default: []
  alpn_address:
    description: Address the TLS-ALPN-01 responder listens on.
    type: str
    default: "0.0.0.0"
  alpn_port:
    description: Port the TLS-ALPN-01 responder listens on.
    type: int
    default: 443
  alpn_lifetime:
    description: Seconds after which the responder exits on its own.
    type: int
    default: 600
  alpn_certs:
    description: For V(alpn_start), items with C(sni), C(cert) and C(key) (throw-away challenge certificates).
    type: list
    elements: dict
    default: []
  responder:
    description: For V(alpn_stop), the C(responder) value returned by V(alpn_start).
    type: path
"""

EXAMPLES = r"""
- name: Read the current certificate (what the action plugin does first)
  portail.https.acme_certificate_host:
    step: inspect
    key_path: /etc/ssl/portail/privkey.pem
    cert_path: /etc/ssl/portail/cert.pem
"""

RETURN = r"""
cert:
  description: The current (V(inspect)) or deployed (V(deploy)) certificate.
  returned: inspect, deploy
  type: dict
  sample: {names: [www.example.org], serial: "3a1f", not_after: "2027-02-21T10:00:00+00:00", key_type: ec256}
csr:
  description: CSR built from the pending key.
  returned: prepare
  type: str
prepared:
  description: What V(prepare) returns (C(csr), C(pending_created), C(created_dirs)), when O(prepare_if_due) found the
    certificate due.
  returned: inspect with O(prepare_if_due), when due
  type: dict
http01_removed:
  description: Token files and directories V(deploy) removed (O(files), O(created_dirs)).
  returned: deploy with O(files)
  type: list
  elements: str
responder:
  description: Handle of the started TLS-ALPN-01 responder.
  returned: alpn_start
  type: str
"""

import datetime
import os
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.portail.https.plugins.module_utils import _certhost as ch

REQUIRED = {
    "inspect": ["key_path", "cert_path"],
    "prepare": ["key_path", "names"],
    "deploy": ["key_path", "cert_path", "cert_pem"],
    "discard": ["key_path"],
    "http01_place": ["tokens"],
    "alpn_start": ["alpn_certs"],
    "alpn_stop": ["responder"],
}


def _mode(value: t.Any) -> int:
    if isinstance(value, int):
        return value
    return int(str(value), 8)


def _fix_attributes(module: AnsibleModule, p: dict[str, t.Any], changed: bool) -> bool:
    targets = [(p["cert_path"], p["mode"]), (p["key_path"], p["key_mode"])]
    targets += [(p[k], p["mode"]) for k in ("chain_path", "fullchain_path") if p[k]]
    for path, mode in targets:
        if path and os.path.exists(path):
            args = {"path": path, "owner": p["owner"], "group": p["group"], "mode": mode}
            args.update({"secontext": [None, None, None, None], "attributes": None})
            changed = module.set_fs_attributes_if_different(args, changed)
    return changed


def _cert_paths(p: dict[str, t.Any]) -> list[str]:
    return [p[k] for k in ("cert_path", "chain_path", "fullchain_path") if p[k]]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "step": {"type": "str", "required": True, "choices": [*list(REQUIRED), "http01_cleanup"]},
            "key_path": {"type": "path"},
            "key_type": {"type": "str", "choices": list(ch.KEY_TYPES), "default": "ec256"},
            "cert_path": {"type": "path"},
            "chain_path": {"type": "path"},
            "fullchain_path": {"type": "path"},
            "names": {"type": "list", "elements": "str"},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw", "default": "0644"},
            "key_mode": {"type": "raw", "default": "0600", "no_log": False},
            "backup": {"type": "bool", "default": True},
            "fix_attributes": {"type": "bool", "default": False},
            "prepare_if_due": {"type": "bool", "default": False},
            "renew_remaining_fraction": {"type": "float", "default": 1.0 / 3.0},
            "force": {"type": "bool", "default": False},
            "cert_pem": {"type": "str"},
            "chain_pem": {"type": "str", "default": ""},
            "meta": {"type": "dict"},
            "pending_created": {"type": "bool", "default": False},
            "created_dirs": {"type": "list", "elements": "path", "default": []},
            "webroot": {"type": "list", "elements": "path", "default": []},
            "challenge_dir": {"type": "list", "elements": "path", "default": []},
            "tokens": {"type": "list", "elements": "dict", "default": [], "no_log": False},
            "files": {"type": "list", "elements": "path", "default": []},
            "alpn_address": {"type": "str", "default": "0.0.0.0"},  # noqa: S104
            "alpn_port": {"type": "int", "default": 443},
            "alpn_lifetime": {"type": "int", "default": 600},
            "alpn_certs": {"type": "list", "elements": "dict", "default": [], "no_log": True},
            "responder": {"type": "path"},
        },
        required_if=[("step", step, fields) for step, fields in REQUIRED.items()],
        supports_check_mode=True,
    )
    if not ch.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(ch.CRYPTOGRAPHY_IMPORT_ERROR))
    p = module.params
    step = p["step"]
    try:
        if step == "inspect":
            result = ch.inspect(
                key_path=p["key_path"],
                cert_path=p["cert_path"],
                chain_path=p["chain_path"],
                fullchain_path=p["fullchain_path"],
                webroots=p["webroot"] + p["challenge_dir"],
            )
            changed = False
            if p["fix_attributes"] and not result["missing_files"]:
                changed = _fix_attributes(module, p, False)
            if p["prepare_if_due"] and p["names"] and not module.check_mode and not result["missing_webroots"]:
                reason, _msg = ch.local_decision(
                    result,
                    names=p["names"],
                    key_type=p["key_type"],
                    fraction=p["renew_remaining_fraction"],
                    force=p["force"],
                    cert_path=p["cert_path"],
                    key_path=p["key_path"],
                    now=datetime.datetime.now(datetime.timezone.utc),
                )
                if reason != ch.VALID:
                    prepared = ch.prepare(
                        key_path=p["key_path"], key_type=p["key_type"], names=p["names"], paths=_cert_paths(p)
                    )
                    result["prepared"] = prepared
                    changed = changed or prepared["pending_created"] or bool(prepared["created_dirs"])
            module.exit_json(changed=changed, **result)
        if module.check_mode:
            module.exit_json(changed=step not in ("discard", "http01_cleanup", "alpn_stop"), skipped_in_check=True)
        if step == "prepare":
            result = ch.prepare(key_path=p["key_path"], key_type=p["key_type"], names=p["names"], paths=_cert_paths(p))
            module.exit_json(changed=result["pending_created"] or bool(result["created_dirs"]), **result)
        elif step == "deploy":
            result = ch.deploy(
                key_path=p["key_path"],
                cert_path=p["cert_path"],
                chain_path=p["chain_path"],
                fullchain_path=p["fullchain_path"],
                cert_pem=p["cert_pem"],
                chain_pem=p["chain_pem"],
                mode=_mode(p["mode"]),
                key_mode=_mode(p["key_mode"]),
                backup=p["backup"],
                meta=p["meta"],
            )
            _fix_attributes(module, p, True)
            if p["files"] or p["created_dirs"]:
                # the http-01 token files go in the same round trip; a leftover is only worth a warning
                try:
                    result["http01_removed"] = ch.http01_cleanup(files=p["files"], created_dirs=p["created_dirs"])[
                        "removed"
                    ]
                except OSError as exc:
                    result["http01_problem"] = f"removing http-01 token files: {exc}"
        elif step == "discard":
            result = ch.discard(
                key_path=p["key_path"], pending_created=p["pending_created"], created_dirs=p["created_dirs"]
            )
        elif step == "http01_place":
            result = ch.http01_place(webroots=p["webroot"], tokens=p["tokens"], challenge_dirs=p["challenge_dir"])
        elif step == "http01_cleanup":
            result = ch.http01_cleanup(files=p["files"], created_dirs=p["created_dirs"])
        elif step == "alpn_start":
            result = ch.alpn_start(
                address=p["alpn_address"], port=p["alpn_port"], certs=p["alpn_certs"], lifetime=p["alpn_lifetime"]
            )
        else:
            result = ch.alpn_stop(responder=p["responder"])
    except (ch.CertHostError, OSError, ValueError) as exc:
        module.fail_json(msg=f"{step}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
