"""portail.https.apache against this machine's apache2, on 127.0.20.2 (web2 / web4 .portail.test).

The behaviour tests live in webserver_suite.py and are shared with the nginx role; this module
says which server they run against. /etc/apache2 is saved before and restored after; Apache is stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .webserver_suite import (
    Env,
    Server,
    apply,
    env,
    test_bad_security_headers_are_rejected,
    test_bootstrap_from_empty_server_in_one_play,
    test_challenge_file_on_port_80,
    test_check_mode_changes_nothing,
    test_hardened_headers_on_every_response,
    test_hsts_on_443_everywhere,
    test_hsts_preload_only_when_eligible,
    test_http2,
    test_injection_in_other_fields_is_rejected,
    test_injection_in_server_names_is_rejected,
    test_invalid_directive_leaves_running_server_untouched,
    test_port_80_redirects_same_host_and_uri,
    test_second_run_changes_nothing,
    test_served_certificate_is_the_deployed_one,
    test_site_removal,
    test_slow_clients_are_cut_off_while_others_are_served,
    test_stateless_http01_responder,
    test_tls_profile_mozilla_intermediate,
    test_tls_versions,
)
from .webserver_support import tree_digest

# Re-exported so that pytest collects the shared tests and the env fixture in this module.
__all__ = [
    "Server",
    "env",
    "server",
    "test_bad_security_headers_are_rejected",
    "test_bootstrap_from_empty_server_in_one_play",
    "test_challenge_file_on_port_80",
    "test_check_mode_changes_nothing",
    "test_hardened_headers_on_every_response",
    "test_hsts_on_443_everywhere",
    "test_hsts_preload_only_when_eligible",
    "test_http2",
    "test_injection_in_other_fields_is_rejected",
    "test_injection_in_server_names_is_rejected",
    "test_invalid_directive_leaves_running_server_untouched",
    "test_port_80_redirects_same_host_and_uri",
    "test_second_run_changes_nothing",
    "test_served_certificate_is_the_deployed_one",
    "test_site_removal",
    "test_slow_clients_are_cut_off_while_others_are_served",
    "test_stateless_http01_responder",
    "test_tls_profile_mozilla_intermediate",
    "test_tls_versions",
]

pytestmark = [pytest.mark.skipif(not Path("/usr/sbin/apache2ctl").exists(), reason="no apache2"), pytest.mark.slow]


@pytest.fixture(scope="module")
def server() -> Server:
    return Server(
        role="apache",
        address="127.0.20.2",
        name="web2.portail.test",
        name_308="web4.portail.test",
        conf_root=Path("/etc/apache2"),
        stop=[["service", "apache2", "stop"], ["/usr/sbin/apache2ctl", "stop"]],
        own_header="Header always set X-Own yes",
        error_500="Redirect 500",
        server_header="Apache",
        bad_directive="BogusDirective on",
        bad_message="Invalid command",
    )


def test_tls_alpn_route_is_refused_with_a_pointer_to_other_challenges(env: Env, tmp_path: Path) -> None:
    before = tree_digest(env.server.conf_root)
    res = apply(env, tmp_path, tls_alpn_route=True)
    assert res.rc != 0
    assert "apache_tls_alpn_route" in res.stdout and "http-01" in res.stdout and "dns-01" in res.stdout
    assert res.changed() == 0
    assert tree_digest(env.server.conf_root) == before
