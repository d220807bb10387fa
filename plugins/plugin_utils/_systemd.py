# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quoting for systemd unit files (systemd.service(5) "Command lines", systemd.unit(5) specifiers)."""

from __future__ import annotations

import re

_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+\Z")


class SystemdQuoteError(ValueError):
    pass


def quote(value: object, *, command: bool = True) -> str:
    """One word of an ExecStart= line (command=True) or one Environment= assignment, quoted when needed.

    '%' starts a specifier everywhere ('%%'); '$' starts a variable in command lines only ('$$').
    Control characters (a newline would end the setting) are refused.
    """
    text = str(value)
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise SystemdQuoteError(f"control characters cannot go into a unit file: {text!r}")
    text = text.replace("%", "%%")
    if command:
        text = text.replace("$", "$$")
    if text and _PLAIN.match(text) and text != ";":
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
