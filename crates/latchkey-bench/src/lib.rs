//! `latchkey-bench`: the load harness for Latchkey.
//!
//! It drives a token service over loopback HTTP/1.1 with tokio + hyper, one
//! keep-alive connection per worker and requests built by hand, and reports
//! throughput, status codes, transport errors and latency percentiles
//! (HdrHistogram) as a table and as JSON.
//!
//! * **Scenarios**: `sign-in` (each worker signs in repeatedly as its own
//!   user), `refresh` (each worker rotates its refresh token in a loop, always
//!   presenting the newest one), `me` (authenticated reads) and `mixed`
//!   (weighted round-robin, default 1 sign-in : 20 refreshes : 500 reads).
//!   Users are created in an untimed setup phase through the normal sign-up
//!   API, named `<prefix>-<run id>-<worker>` so runs do not collide.
//! * **Bounds**: every run stops by itself at `--duration` or after
//!   `--max-requests` requests (setup included), whichever comes first.
//! * **Loopback only**: targets outside 127.0.0.0/8, `::1` and `localhost`
//!   are refused ([`guard`]).
//! * **Profiles** ([`profile`]) describe another service's paths, methods,
//!   body encoding and field names, so the same driver measures a peer
//!   (`profiles/simplejwt.toml` for Django REST framework SimpleJWT).
//! * **Durability records** (`--record`): for refresh load, one JSON line per
//!   worker with the newest refresh token acknowledged with 200 and the one
//!   in flight when the run stopped, for `kill -9` crash tests.
//! * **Open loop** (`--rate N`): requests go out on a fixed schedule of `N`
//!   per second in all, and latency counts from when each was due, so a
//!   slow answer that holds up the next requests shows in the percentiles
//!   (no coordinated omission) ([`schedule::ArrivalSchedule`]).
//! * **Server CPU** (`--server-pid PID`): the server's utime + stime over the
//!   timed phase, and per successful request ([`server_cpu`]).

pub mod client;
pub mod guard;
pub mod profile;
pub mod report;
pub mod run;
pub mod schedule;
pub mod server_cpu;
pub mod stats;
