"""Attributes shared by the documentation of the collection's action plugins (control_file, deploy_event,
deploy_lock, operator_inputs): each works in the controller process, with no module run and no diff."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  action:
    support: full
    description: An action plugin; the module file of the same name holds only its documentation.
  diff_mode:
    support: none
    description: No diff is returned.
  platform:
    support: full
    platforms: posix
    description: Runs in the controller process, on the control host only.
"""
