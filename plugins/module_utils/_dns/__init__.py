# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DNS-01 backends (controller side only; needs dnspython >= 2.4).

``base.DnsProvider`` is the record API; ``providers`` holds one module per provider.
"""

from __future__ import annotations
