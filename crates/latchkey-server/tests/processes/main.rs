//! The real `latchkey` binary as a child process (killed with `kill -9`,
//! driven through every CLI command), and the one test that installs a
//! `tracing` subscriber in this process: no other test here runs the
//! server's code in-process, so none races it over which call sites are
//! enabled.

mod access_log;
mod crash;
mod durability;
mod metrics_listen;
mod operator_cli;
mod request_logs;
mod secret_beside_database;
mod secrets_never_printed;
mod users_cli;
