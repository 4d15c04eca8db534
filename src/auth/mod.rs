//! Authentication: password hashing, access and refresh tokens, and the signed-in caller.

pub mod admission;
pub mod keys;
pub mod password;
pub mod token;
