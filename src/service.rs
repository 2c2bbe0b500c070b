//! The hyper service.
