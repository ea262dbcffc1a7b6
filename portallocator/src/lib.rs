//! portallocator (in progress).
