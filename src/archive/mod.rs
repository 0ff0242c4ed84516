//! Working with a whole results folder of a bulk run: `status` (what is done, running, failed,
//! left) and `merge` (one tidy table over all inputs).

pub mod merge;
pub mod status;
