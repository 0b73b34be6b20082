#!/bin/sh
# core.fail: print the message to stderr and exit with ATTUNE_PARAM_EXIT_CODE (default 1).
echo "${ATTUNE_PARAM_MESSAGE:-core.fail: failing on purpose}" >&2
exit "${ATTUNE_PARAM_EXIT_CODE:-1}"
