//! The daemon's memory budget: everything it holds is bounded by the
//! capacities it was started with.

use crate::config::Config;

/// An upper bound on the daemon's heap, from its capacities: what the
/// tables hold at most, plus what one request in flight may use. The
/// flat-memory test checks the peak stays under it.
pub fn heap_bound(cfg: &Config) -> usize {
    use super::conn::MAX_PENDING_OUTPUT;
    use crate::wire::proto::MAX_LINE;
    const PATH_MAX: usize = 4096;
    // Fixed: the tables and the event ring, each allocated whole, once,
    // with its first entry.
    let tables = cfg.max_containers * std::mem::size_of::<Option<super::container::Container>>()
        + cfg.max_execs * std::mem::size_of::<Option<super::container::Exec>>()
        + (cfg.max_clients + cfg.max_followers + 1)
            * std::mem::size_of::<Option<super::conn::Client>>()
        + (cfg.max_calls + cfg.max_containers) * std::mem::size_of::<Option<super::Call>>()
        + cfg.retain * std::mem::size_of::<crate::wire::event::Event>();
    // A container: its request's strings (a line bounds them), kept and
    // encoded once more for the record; its paths; the shim's lines.
    let container =
        3 * MAX_LINE + 4 * PATH_MAX + 2 * (nanoctr_shim::contract::MAX_REPLY_LINE + 1024);
    // A client: its line buffer, what it has not read yet, and the
    // largest answer, `list` of a full table.
    let client = MAX_LINE + MAX_PENDING_OUTPUT + cfg.max_containers * (MAX_LINE + 64);
    // An exec: its name, paths and the shim's lines, and while it is
    // made, the process file (a bundle's process object, in a line's
    // worth of changes).
    let exec = 3 * PATH_MAX + 2 * (nanoctr_shim::contract::MAX_REPLY_LINE + 1024);
    let call = PATH_MAX;
    // std's own (arguments, environment, buffers), what starting a
    // process or reading a directory takes while it lasts, and a `logs`
    // answer being put together (the log read, and the answer).
    let overhead = 256 * 1024 + 2 * super::conn::MAX_LOGS_ANSWER as usize;

    tables
        + cfg.max_containers * container
        + cfg.max_execs * exec
        + (cfg.max_clients + cfg.max_followers + 1) * client
        + (cfg.max_calls + cfg.max_containers) * call
        + overhead
}
