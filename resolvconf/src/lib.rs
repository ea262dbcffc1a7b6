//! resolvconf (in progress).
