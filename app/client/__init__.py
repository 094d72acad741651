"""The `statecast` command's client half: talks to a running API over HTTP."""
