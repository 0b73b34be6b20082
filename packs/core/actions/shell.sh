#!/bin/bash
# core.shell: run ATTUNE_PARAM_CMD with bash; its exit code is the action's.
exec /bin/bash -c "$ATTUNE_PARAM_CMD"
