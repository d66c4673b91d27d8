use clap::Parser;
use shop::cli::{Cli, Command};
use shop::config::{Config, LogFormat};

#[actix_web::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        command => {
            shop::telemetry::init(LogFormat::Text);
            match shop::cli::run_command(command).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("shop: {e}");
                    2
                }
            }
        }
    };
    std::process::exit(code);
}

async fn serve() -> i32 {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shop: {e}");
            return 2;
        }
    };
    shop::telemetry::init(config.log_format);
    let running = match shop::server::start(config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "startup failed");
            eprintln!("shop: {e}");
            return 2;
        }
    };
    // SIGTERM or SIGINT: readiness fails, requests are still served for the drain delay, then in-flight
    // requests and background tasks finish within the shutdown bound.
    match shop::shutdown::serve(running).await {
        Ok(()) => {
            tracing::info!("shut down");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            1
        }
    }
}
