"""portail.https.nginx against this machine's nginx, on 127.0.20.1 (web1 / web3 .portail.test).

The behaviour tests live in webserver_suite.py and are shared with the Apache role; this module
says which server they run against. /etc/nginx is saved before and restored after; nginx is stopped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .webserver_suite import (
    Server,
    env,
    test_bootstrap_from_empty_server_in_one_play,
    test_challenge_file_on_port_80,
    test_check_mode_changes_nothing,
    test_hsts_on_443_everywhere,
    test_http2,
    test_injection_in_other_fields_is_rejected,
    test_injection_in_server_names_is_rejected,
    test_invalid_directive_leaves_running_server_untouched,
    test_port_80_redirects_same_host_and_uri,
    test_second_run_changes_nothing,
    test_served_certificate_is_the_deployed_one,
    test_site_removal,
    test_stateless_http01_responder,
    test_tls_versions,
)

# Re-exported so that pytest collects the shared tests and the env fixture in this module.
__all__ = [
    "Server",
    "env",
    "server",
    "test_bootstrap_from_empty_server_in_one_play",
    "test_challenge_file_on_port_80",
    "test_check_mode_changes_nothing",
    "test_hsts_on_443_everywhere",
    "test_http2",
    "test_injection_in_other_fields_is_rejected",
    "test_injection_in_server_names_is_rejected",
    "test_invalid_directive_leaves_running_server_untouched",
    "test_port_80_redirects_same_host_and_uri",
    "test_second_run_changes_nothing",
    "test_served_certificate_is_the_deployed_one",
    "test_site_removal",
    "test_stateless_http01_responder",
    "test_tls_versions",
]

pytestmark = pytest.mark.skipif(not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists(), reason="no nginx")


@pytest.fixture(scope="module")
def server() -> Server:
    return Server(
        role="nginx",
        address="127.0.20.1",
        name="web1.portail.test",
        name_308="web3.portail.test",
        conf_root=Path("/etc/nginx"),
        stop=[["service", "nginx", "stop"], ["/usr/sbin/nginx", "-s", "stop"]],
        own_header="add_header X-Own yes always;",
        bad_directive="bogus_directive on;",
        bad_message="unknown directive",
    )
