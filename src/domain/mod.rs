//! The clinic's rules, as types whose constructors refuse what the rules forbid. Pure: no I/O,
//! no framework types.

pub mod account;
pub mod throttle;
