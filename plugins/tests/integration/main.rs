//! Black-box tests of the plugin client against plugins served on unix sockets and TCP in
//! this process: activation, calls, errors, timeouts, garbage and dying plugins.

mod activation;
mod calls;
mod server;
