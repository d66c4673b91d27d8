//! The command line: `shop serve | migrate | openapi | healthcheck | service-credential | admin create |
//! modules`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use shop_kernel::RequestContext;
use shop_kernel::observe::NoObserver;

use crate::app::{StartupError, build};
use crate::config::Config;

/// shop: an online-shop backend whose modules run in one process or as separate services.
#[derive(Debug, Parser)]
#[command(name = "shop", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the HTTP server (migrations are applied first).
    Serve,
    /// Applies the local modules' pending migrations and exits.
    Migrate,
    /// Writes the OpenAPI documents of the HTTP APIs and the AsyncAPI documents of the modules' events.
    Openapi {
        /// Where to write them.
        #[arg(long, default_value = "openapi")]
        dir: PathBuf,
        /// Only compare: exit non-zero when the files (OpenAPI and AsyncAPI) differ from the code.
        #[arg(long)]
        check: bool,
    },
    /// Exits 0 when the server at SHOP_HTTP_ADDR (or `--url`) is live: a container healthcheck that needs
    /// no shell tools.
    Healthcheck {
        /// Base URL to probe (default: derived from SHOP_HTTP_ADDR).
        #[arg(long)]
        url: Option<String>,
    },
    /// Prints a new per-service credential: the secret for the service itself (SHOP_SERVICE_SECRET) and the
    /// entry the services it calls add to SHOP_SERVICE_PEERS (only a digest: they never hold the secret).
    ServiceCredential {
        /// The service's name: the modules it hosts joined by `+` (e.g. `ordering` or `identity+catalog`),
        /// or any other name for a gateway that hosts none.
        #[arg(long)]
        name: String,
    },
    /// Lists the modules of the module table, in dependency order, and whether this binary has each
    /// implementation (built with its cargo feature) or only calls it remotely.
    Modules {
        /// Only the names, one per line (scripts: each is a cargo feature and a SHOP_MODULES entry).
        #[arg(long)]
        names: bool,
    },
    /// Manages admin accounts.
    Admin {
        /// The admin action.
        #[command(subcommand)]
        action: AdminCommand,
    },
}

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Creates an admin (or grants the admin role to an existing account); the password is read from stdin.
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
    },
}

/// Runs a non-serving command; returns the process exit code.
pub async fn run_command(command: Command) -> Result<i32, StartupError> {
    match command {
        Command::Serve => Ok(0),
        Command::Migrate => {
            let config = Config::from_env()?;
            tokio::task::spawn_blocking(move || {
                build(&config, Arc::new(NoObserver), None).map(|_| ())
            })
            .await
            .map_err(|e| StartupError::Other(e.to_string()))??;
            println!("migrations applied");
            Ok(0)
        }
        Command::Openapi { dir, check } => {
            if check {
                let drift = crate::openapi::drifted(&dir).map_err(StartupError::Other)?;
                if drift.is_empty() {
                    println!("{} is up to date", dir.display());
                    Ok(0)
                } else {
                    eprintln!(
                        "{} differs from the code: {}; run `shop openapi`",
                        dir.display(),
                        drift.join(", ")
                    );
                    Ok(1)
                }
            } else {
                crate::openapi::write_all(&dir).map_err(StartupError::Other)?;
                println!("wrote OpenAPI and AsyncAPI documents to {}", dir.display());
                Ok(0)
            }
        }
        Command::Healthcheck { url } => Ok(healthcheck(url).await),
        Command::Modules { names } => {
            for def in crate::modules::ALL {
                if names {
                    println!("{}", def.name);
                } else {
                    let built = if def.compiled_in {
                        "compiled in"
                    } else {
                        "remote only"
                    };
                    println!("{:<14} {built}", def.name);
                }
            }
            Ok(0)
        }
        Command::ServiceCredential { name } => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| StartupError::Other(format!("no randomness: {e}")))?;
            use base64::Engine as _;
            let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            let digest: String = shop_kernel::http::credential_digest(&secret)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            println!("# for the service {name} itself:");
            println!("SHOP_SERVICE_NAME={name}");
            println!("SHOP_SERVICE_SECRET={secret}");
            println!("# for every service it calls, one entry of SHOP_SERVICE_PEERS:");
            println!("{name}={digest}");
            Ok(0)
        }
        Command::Admin {
            action: AdminCommand::Create { email },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|e| {
                    StartupError::Other(format!("cannot read the password from stdin: {e}"))
                })?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            let config = Config::from_env()?;
            let modules =
                tokio::task::spawn_blocking(move || build(&config, Arc::new(NoObserver), None))
                    .await
                    .map_err(|e| StartupError::Other(e.to_string()))??;
            let identity = modules
                .get::<dyn shop_identity::IdentityApi>()
                .ok_or_else(|| StartupError::Other("identity is unreachable".into()))?;
            match identity
                .ensure_admin(&RequestContext::system(), email.clone(), password)
                .await
            {
                Ok(user) => {
                    println!("admin {} ({})", user.email, user.id);
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("cannot create the admin {email}: {e}");
                    Ok(1)
                }
            }
        }
    }
}

async fn healthcheck(url: Option<String>) -> i32 {
    let base = url.unwrap_or_else(|| {
        let addr = std::env::var("SHOP_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
        // A server bound to every interface is probed on loopback.
        let addr = addr
            .replace("0.0.0.0", "127.0.0.1")
            .replace("[::]", "[::1]");
        format!("http://{addr}")
    });
    let client = reqwest::Client::new();
    let probe = client
        .get(format!("{}/health/live", base.trim_end_matches('/')))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await;
    match probe {
        Ok(resp) if resp.status().is_success() => 0,
        Ok(resp) => {
            eprintln!("unhealthy: HTTP {}", resp.status());
            1
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            1
        }
    }
}
