//! The `authtrail` binary: parse the command line, hand over to the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    authtrail::cli::main().await
}
