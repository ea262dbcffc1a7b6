//! The `dnet` program: see the library's documentation.

fn main() -> std::process::ExitCode {
    dnet::cli::main()
}
