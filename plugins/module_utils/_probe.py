# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TCP port probe, the `nc -zv host port` / `telnet host port` check in code (Python >= 3.9, stdlib).

A TCP connect tells three things apart:
- open: the handshake completed (something listens and the firewall lets it through);
- refused: the host answered with a RST (the firewall lets it through, nothing listens, or a REJECT
  with tcp-reset);
- filtered: no answer before the timeout (a DROP somewhere on the path);
- unreachable: an ICMP error came back (a REJECT with icmp-*-unreachable/prohibited, or no route).
"""

from __future__ import annotations

import errno
import socket
import typing as t

STATES = ("open", "refused", "filtered", "unreachable")


def probe(host: str, port: int, timeout: float) -> dict[str, t.Any]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return {"port": port, "state": "unreachable", "detail": f"cannot resolve {host}: {exc}"}
    family, socktype, proto, _name, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except ConnectionRefusedError:
        return {"port": port, "address": address[0], "state": "refused", "detail": "connection refused (RST)"}
    except (socket.timeout, TimeoutError):
        return {"port": port, "address": address[0], "state": "filtered", "detail": f"no answer in {timeout}s"}
    except OSError as exc:
        detail = errno.errorcode.get(exc.errno or 0, "") + f" {exc.strerror or exc}"
        return {"port": port, "address": address[0], "state": "unreachable", "detail": detail.strip()}
    finally:
        sock.close()
    return {"port": port, "address": address[0], "state": "open", "detail": "connected"}


def probe_all(host: str, ports: t.Sequence[int], timeout: float) -> dict[str, dict[str, t.Any]]:
    return {str(port): probe(host, port, timeout) for port in ports}


def mismatches(results: t.Mapping[str, t.Mapping[str, t.Any]], expect: t.Mapping[str, t.Sequence[str]]) -> list[str]:
    """Human-readable list of ports whose state is not one of the expected ones."""
    bad = []
    for port, wanted in expect.items():
        got = results.get(str(port), {}).get("state")
        if got not in wanted:
            bad.append(f"port {port}: {got} (expected {' or '.join(wanted)})")
    return bad
