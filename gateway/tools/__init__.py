"""The command-line tools beside the daemon: analyze, probe, clients (watch, status, alerts...), backup/export."""
