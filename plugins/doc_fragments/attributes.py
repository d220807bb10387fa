# Copyright: (c) 2026, portail.https contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # A module with full check mode and diff support. Take this one or NO_DIFF, not both; a module states
    # only its details, or a support level that differs (its own attributes win over a fragment's).
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
"""

    # A module with full check mode support that returns no diff.
    NO_DIFF = r"""
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
"""

    # A module whose work runs partly on the controller, in an action plugin of the same name.
    ACTION = r"""
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the work run on the controller.
    support: full
  async:
    description: Supports being used with the C(async) keyword.
    support: none
"""

    # A module that runs on any POSIX host.
    PLATFORM = r"""
attributes:
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""
