//! Several real `latchkey` nodes on one PostgreSQL database
//! (`LATCHKEY_TEST_DATABASE_URL`; skipped without it). The outage test,
//! which restarts that PostgreSQL server, is a binary of its own:
//! `cluster_outage.rs`.

mod admin;
mod audit;
mod mail;
mod nodes;
mod oidc;
mod secret;
