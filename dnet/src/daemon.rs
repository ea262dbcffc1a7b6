//! `dnet daemon`: the controller with its redb store, serving the API on a unix socket.
//!
//! Start-up restores every network, endpoint and sandbox of the store (the controller also
//! removes what a crash left half made), creates the default `bridge` network when it is
//! missing, and only then binds the socket, so a client that reaches the socket finds
//! everything in place. The restored sandboxes are compared with the kernel (leftover
//! interfaces, routes, published ports, hosts files, embedded DNS servers) in the background,
//! while the socket is bound and served; a request on such a sandbox or its endpoints waits for
//! it (see `Controller::start`). SIGTERM and SIGINT stop accepting requests, let those in flight
//! finish, and stop the controller's background work; networks and sandboxes stay in the
//! kernel and the store (a command started by `dnet run` keeps its network) for the next start.

use std::io::IsTerminal as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use libnetwork::{BridgeConfig, Config, Controller, NetworkOptions, netlabel};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::api::{self, AppState};

/// The default data directory (the store and the sandboxes' files).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/dnet";

/// The default run directory (namespace files under `netns/`).
pub const DEFAULT_RUN_DIR: &str = "/run/dnet";

/// The default name of the default network's bridge interface.
pub const DEFAULT_BRIDGE_NAME: &str = "dnet0";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The daemon's settings.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The socket to serve on.
    pub socket: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The log format.
    pub log_format: LogFormat,
    /// The log filter (`info`, `debug`, `dnet=debug,libnetwork=trace`); `DNET_LOG` overrides.
    pub log_level: String,
    /// Create the `bridge` network at start when it does not exist.
    pub default_bridge: bool,
    /// The default network's bridge interface.
    pub bridge_name: String,
    /// Program firewall rules (NAT, isolation, published ports).
    pub iptables: bool,
    /// Serve published ports reached from the host itself through the in-process proxy.
    pub userland_proxy: bool,
    /// Test support: the process kills itself (SIGKILL) when the controller reaches this step
    /// (`join:driver-joined`, ...), to check crash recovery.
    pub kill_at_step: Option<String>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(crate::client::DEFAULT_SOCKET),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            run_dir: PathBuf::from(DEFAULT_RUN_DIR),
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
            default_bridge: true,
            bridge_name: DEFAULT_BRIDGE_NAME.to_owned(),
            iptables: true,
            userland_proxy: true,
            kill_at_step: None,
        }
    }
}

/// Installs the log subscriber: `DNET_LOG` or `level`, with hickory's per-query logs at warn.
///
/// # Errors
/// An invalid filter.
pub fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let base = std::env::var("DNET_LOG").unwrap_or_else(|_| level.to_owned());
    let directives = if base.contains("hickory_server") {
        base
    } else {
        format!("{base},hickory_server=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("bad log filter {directives:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("install the log subscriber: {e}"))
}

/// Runs the daemon until SIGTERM or SIGINT.
///
/// # Errors
/// When the controller cannot start (no privileges, a store in use) or the socket cannot be
/// served.
pub fn run(options: DaemonOptions) -> anyhow::Result<()> {
    // mimalloc (dnet's allocator) asks for transparent huge pages on its arenas
    // (`MADV_HUGEPAGE`), so the first allocation of each thread faults in and zeroes a whole
    // 2 MiB page: with 1000 stored endpoints that zeroing was a tenth of the start. The
    // daemon's heaps are small; small pages do. Only the daemon turns them off (the setting is
    // inherited across exec, and the commands `dnet run` starts are not the daemon's
    // children); a failure only costs time.
    let _ = nix::sys::prctl::set_thp_disable(true);
    init_logging(options.log_format, &options.log_level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(serve(options))
}

/// The controller's configuration for these options.
fn controller_config(options: &DaemonOptions) -> Config {
    let mut config = Config::new(&options.data_dir, &options.run_dir);
    config.bridge = BridgeConfig {
        enable_ip_forwarding: true,
        enable_iptables: options.iptables,
        enable_ip6tables: options.iptables,
        enable_userland_proxy: options.userland_proxy,
    };
    if let Some(step) = options.kill_at_step.clone() {
        config.step_hook = Some(Arc::new(move |reached: &str| {
            if reached == step {
                eprintln!("dnet daemon: killing itself at step {reached} (--kill-at-step)");
                let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGKILL);
            }
        }));
    }
    config
}

/// Start-up, serving and shutdown.
async fn serve(options: DaemonOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the daemon needs root: it creates namespaces, interfaces and firewall rules");
    }
    // Signals are caught from the start: one that arrives during the restore stops the daemon
    // as soon as it is up, instead of killing it halfway.
    let mut terminate = signal(SignalKind::terminate()).context("catch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("catch SIGINT")?;
    check_socket(&options.socket)?;

    let progress = spinner(format!(
        "restoring networks and sandboxes from {}",
        options.data_dir.display()
    ));
    // Restored sandboxes are compared with the kernel in the background; requests on one wait
    // for it (see `Controller::start`).
    let controller = Controller::start(controller_config(&options))
        .await
        .context("start the network controller")?;
    if options.default_bridge {
        ensure_default_bridge(&controller, &options.bridge_name).await?;
    }
    progress.finish_and_clear();

    let listener = bind(&options.socket)?;
    let networks = controller.networks();
    let endpoints: usize = networks.iter().map(|n| n.endpoints().len()).sum();
    info!(
        socket = %options.socket.display(),
        data_dir = %options.data_dir.display(),
        networks = networks.len(),
        endpoints,
        sandboxes = controller.sandboxes().len(),
        start_ms = started.elapsed().as_secs_f64() * 1000.0,
        "dnet daemon ready"
    );

    let shutdown = async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(signal = name, "shutting down: finishing requests in flight");
    };
    let served = api::serve(listener, AppState::new(controller.clone()), shutdown).await;
    controller.shutdown().await;
    if let Err(e) = std::fs::remove_file(&options.socket) {
        warn!(socket = %options.socket.display(), error = %e, "remove the socket");
    }
    served.context("serve the API")?;
    info!(data_dir = %options.data_dir.display(), "dnet daemon stopped; state kept for the next start");
    Ok(())
}

/// A spinner on stderr while something long runs (hidden without a terminal).
fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Creates the `bridge` network (interface `bridge_name`) when there is none.
async fn ensure_default_bridge(controller: &Controller, bridge_name: &str) -> anyhow::Result<()> {
    if controller.network_by_name("bridge").is_ok() {
        return Ok(());
    }
    let options = NetworkOptions {
        driver_options: [(netlabel::BRIDGE_NAME.to_owned(), bridge_name.to_owned())].into(),
        ..NetworkOptions::default()
    };
    let net = controller
        .new_network("bridge", "bridge", options)
        .await
        .context("create the default bridge network")?;
    info!(network_id = %net.id(), bridge = bridge_name, "default bridge network created");
    Ok(())
}

/// Refuses to start when another daemon answers on the socket; removes a stale socket file.
fn check_socket(socket: &Path) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create the socket's directory {}", dir.display()))?;
    }
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => bail!(
            "another dnet daemon is already serving {}",
            socket.display()
        ),
        Err(_) if socket.exists() => {
            std::fs::remove_file(socket)
                .with_context(|| format!("remove the stale socket {}", socket.display()))?;
            info!(socket = %socket.display(), "removed a stale socket");
        }
        Err(_) => {}
    }
    Ok(())
}

/// Binds the socket with mode 0660: at a temporary name first, then renamed into place, so
/// the socket never exists with other permissions.
fn bind(socket: &Path) -> anyhow::Result<UnixListener> {
    let file_name = socket
        .file_name()
        .with_context(|| format!("socket path {} has no file name", socket.display()))?;
    let temporary = socket.with_file_name(format!(
        ".{}.{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary)
        .with_context(|| format!("listen on {}", temporary.display()))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("set the permissions of {}", temporary.display()))?;
    std::fs::rename(&temporary, socket)
        .with_context(|| format!("move the socket to {}", socket.display()))?;
    Ok(listener)
}
