//! The verbs of protocol v1: each one's usage and what it does, for
//! `help` and the client's `--help`.

/// Every verb with its usage and what it does; `help` prints this table.
pub const VERBS: &[(&str, &str, &str)] = &[
    ("hello", "hello", "protocol and daemon version"),
    ("version", "version", "daemon version"),
    ("help", "help", "this list"),
    (
        "create",
        "create ID BUNDLE [stdin=PATH] [stdout=PATH] [stderr=PATH] [runtime=NAME] [terminal[=no]] \
         [interactive] [cols=N] [rows=N] [log-size=BYTES] [restart=POLICY] [critical] \
         [overlay=tmpfs|none|DIR] [overlay-size=BYTES] [health-cmd=\"CMD ARG...\"] \
         [health-interval=DURATION] [health-timeout=DURATION] [health-retries=N] \
         [health-start=DURATION] [net=host|none|ns:PATH] [label.KEY=VALUE ...]",
        "create a container from an OCI bundle, not yet started",
    ),
    ("start", "start ID", "start a created container"),
    (
        "run",
        "run ID BUNDLE [options as for create]",
        "create and start",
    ),
    (
        "exec",
        "exec ID PROC [terminal] [interactive] [cwd=DIR] [env=K=V ...] [user=UID[:GID]] \
         [cols=N] [rows=N] [log-size=BYTES] -- ARG...",
        "run another process in a running container, with its own shim",
    ),
    (
        "wait",
        "wait ID [PROC] | wait ID healthy [timeout=DURATION]",
        "wait for the init (or process PROC) to exit; answers exit=N; or until its health check passes",
    ),
    (
        "swap",
        "swap ID BUNDLE [swap-timeout=DURATION] [options as for create]",
        "update: stop the running version, start BUNDLE under the same id, keep the previous; \
         roll back by itself unless it is healthy (or, with no health check, still running) within swap-timeout (default 60s)",
    ),
    ("commit", "commit ID", "keep the swapped-in version: forget the previous one"),
    (
        "rollback",
        "rollback ID",
        "bring the previous version back (stops the current one)",
    ),

    (
        "kill",
        "kill ID [SIGNAL] [all | proc=PROC]",
        "signal the init, every process (all), or one exec process (TERM, SIGKILL, 9, ...; default TERM)",
    ),
    ("pause", "pause ID", "freeze every process of the container"),
    ("resume", "resume ID", "thaw a paused container"),
    (
        "update",
        "update ID [memory=BYTES] [memory-swap=BYTES] [cpu-shares=N] [cpu-quota=N] [cpu-period=N] [pids=N]",
        "change a live container's limits (BYTES may end in k, m or g)",
    ),
    (
        "stats",
        "stats ID",
        "memory, cpu and pids usage and limits, from the container's cgroup",
    ),
    ("ps", "ps ID", "the pids in the container, one per line"),
    (
        "checkpoint",
        "checkpoint ID NAME [exit] [dir=DIR]",
        "save the container's processes to DIR/NAME (default BUNDLE/checkpoints); exit stops it after",
    ),
    (
        "restore",
        "restore ID BUNDLE checkpoint=NAME [dir=DIR] [options as for create]",
        "a new running container from a checkpoint",
    ),
    (
        "checkpoints",
        "checkpoints ID [dir=DIR]",
        "the container's checkpoints, one per line",
    ),
    (
        "checkpoint-delete",
        "checkpoint-delete ID NAME [dir=DIR]",
        "remove a checkpoint",
    ),
    (
        "delete",
        "delete ID [force]",
        "remove a stopped container; force kills it first",
    ),
    ("list", "list", "one line per container"),
    ("state", "state ID [check]", "one container in detail; check: its CNI network's CHECK"),
    (
        "events",
        "events [since=SEQ] [id=ID] [type=TYPE]",
        "replay retained events after SEQ, then follow new ones",
    ),
    (
        "metrics",
        "metrics",
        "counters and gauges in Prometheus text format",
    ),
    (
        "attach",
        "attach ID [PROC]",
        "where to connect to a process's console or stdio",
    ),
    (
        "resize",
        "resize ID PROC COLS ROWS",
        "set the size of a process's terminal",
    ),
    (
        "closestdin",
        "closestdin ID [PROC]",
        "end a process's input",
    ),
    (
        "logs",
        "logs ID [PROC] [tail=N] [follow]",
        "the captured output (last N lines); follow streams what comes",
    ),
];

/// The usage line of a verb.
pub fn usage(verb: &str) -> &'static str {
    VERBS.iter().find(|v| v.0 == verb).map_or("help", |v| v.1)
}
