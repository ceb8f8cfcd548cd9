//! Time, injectable so tests can move it. Defined with the wire formats,
//! whose timestamps use the same unit, so verifiers share it.

pub use latchkey_wire::clock::{Clock, ManualClock, SystemClock, UnixTime};
