//! ipam (in progress).
