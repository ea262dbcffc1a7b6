//! ipamapi (in progress).
