//! osl (in progress).
