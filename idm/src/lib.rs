//! idm (in progress).
