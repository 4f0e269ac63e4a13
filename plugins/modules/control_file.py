#!/usr/bin/python
"""Documentation of the control_file action plugin (plugins/action/control_file.py does the work).

ansible-doc finds an action plugin's documentation in the module of the same name: this file.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: control_file
short_description: Write a small text file on the control host, in the controller process itself
description:
  - Writes I(content) to I(dest) on the control host by an atomic rename of a temp file in the
    same folder, whatever the task's host or connection is.
  - The deploy record's files live on the control host. C(ansible.builtin.copy) delegated to
    localhost costs two module runs (a remote stat, then the copy) per node and per write; this
    action plugin writes the file in the controller process, with no module run.
  - Reports C(changed) only when the file's content differs (or, with I(state=absent), when the
    file was there).
extends_documentation_fragment:
  - edge.canary.controller_action
attributes:
  check_mode:
    support: full
    description: Reports whether the file would change and writes nothing (set C(check_mode) to
      false on the task to write anyway).
options:
  dest:
    description: Absolute path of the file on the control host; its folder must exist unless
      I(make_dirs) is true.
    type: path
    required: true
  content:
    description: The whole text of the file (use C(to_nice_json) for data); required unless
      I(state=absent). A number (a template that renders to one) is written as its text and a newline.
    type: str
  mode:
    description: Octal permissions of the file, as a string like C("0644") (of the folder with
      I(state=directory), default C("0755")).
    type: str
    default: "0644"
  state:
    description: C(file) writes I(content); C(absent) removes I(dest) (changed only when it was
      there); C(directory) creates I(dest) as a folder with its parents (changed only when it was
      not there; I(mode) defaults to C(0755) then).
    type: str
    choices: [file, absent, directory]
    default: file
  make_dirs:
    description: Create the file's folder (and its parents, mode 0755) when it is missing.
    type: bool
    default: false
author:
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Record the node's result on the control host
  edge.canary.control_file:
    dest: /var/lib/edge-canary/records/edge-1.json
    content: "{{ {'node': 'edge-1', 'result': 'ok'} | to_nice_json }}"
    mode: "0640"
  check_mode: false
"""

RETURN = r"""
dest:
  description: The file written (or that would be written).
  type: str
  returned: always
"""
