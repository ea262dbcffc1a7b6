//! Compiles `proto/networkdb.proto` with protox (a pure-Rust parser) and prost-build, so no
//! `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/networkdb.proto");
    let fds = protox::compile(["proto/networkdb.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
