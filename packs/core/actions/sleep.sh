#!/bin/sh
# core.sleep: sleep ATTUNE_PARAM_SECONDS seconds, then report them as JSON.
seconds="${ATTUNE_PARAM_SECONDS:-1}"
sleep "$seconds" || exit $?
printf '{"seconds": %s}\n' "$seconds"
