#!/bin/sh
# The bench's ansible_python_interpreter on the local lab's hosts: runs the module with the real
# Python ($EDGE_CANARY_MODULE_PYTHON), then appends what `times` prints (the shell's own CPU, then its
# waited-for children's: the module and whatever it ran) to $EDGE_CANARY_MODULE_CPU. The bench sets
# both, and so tells the module runs' CPU (on production's nodes and load balancers) from Ansible's own.
"$EDGE_CANARY_MODULE_PYTHON" "$@"
rc=$?
times >> "$EDGE_CANARY_MODULE_CPU"
exit "$rc"
