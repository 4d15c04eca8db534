//! Where requests enter: one module per resource scope. Handlers turn wire types into domain
//! types, call the store, and turn the result into a response; no clinical rule lives here.

pub mod operations;
