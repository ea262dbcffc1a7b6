//! etchosts (in progress).
