//! `evlog serve [DIR]`: the HTTP API (`evlog::http`) over a store: health, metrics, dead
//! letters, reads and the event stream, behind bearer tokens. Configured by the replaced
//! design's environment variables (`evlog::http::config`), a TOML file (`--config`) and flags,
//! in rising order of precedence. Binds to 127.0.0.1:8080 unless told otherwise.
//!
//! On SIGTERM or SIGINT it stops accepting connections, ends the event streams, finishes the
//! requests in flight, stops the bus (deliveries in flight end, checkpoints are written) and
//! closes the store. It runs no handler of its own: an application's handlers run in the
//! application, which mounts `evlog::http::Api::router` itself.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use evlog::Store;
use evlog::bus::EventBus;
use evlog::http::{Api, Auth, ServeConfig, serve};
use evlog::metrics::{ExportTarget, Metrics, Monitor, export_metrics_every};

use crate::{Failure, Outcome};

/// Arguments of `evlog serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory (created if missing); else EVENT_STORE_CONNECTION_URL.
    pub dir: Option<PathBuf>,
    /// A TOML file holding the variables as keys and [[tokens]] (name, token, role); the
    /// environment overrides it, flags override both.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The address to listen on (else EVLOG_LISTEN, else 127.0.0.1:8080); port 0 picks one.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Ask for no token (only where no one else can reach the listener).
    #[arg(long)]
    pub no_auth: bool,
}

fn config(a: &Args) -> Result<ServeConfig, Failure> {
    let bad = |e: evlog::http::ServeConfigError| Failure::usage(e.to_string());
    let mut c = match &a.config {
        Some(file) => ServeConfig::from_file_and_env(file).map_err(bad)?,
        None => ServeConfig::from_env().map_err(bad)?,
    };
    if let Some(dir) = &a.dir {
        c.store_dir = Some(dir.clone());
    }
    if let Some(listen) = a.listen {
        c.listen = listen;
    }
    c.no_auth |= a.no_auth;
    c.check().map_err(bad)?;
    Ok(c)
}

/// Runs the subcommand until SIGTERM or SIGINT.
pub fn run(a: &Args) -> Result<Outcome, Failure> {
    let c = config(a)?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    for var in &c.ignored {
        eprintln!(
            "evlog serve: {var} is set and ignored (an embedded store has no connection pool)"
        );
    }
    let dir = c.store_dir.clone().expect("checked");
    let store = match Store::open(&dir) {
        Ok(s) => Arc::new(s),
        Err(evlog::Error::Locked { .. }) => return Err(crate::locked(&dir, "serve")),
        Err(e) => return Err(e.into()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("start the runtime: {e}")))?;
    let r = rt.block_on(serve_until_signal(&c, store.clone()));
    drop(rt);
    // Every other holder of the store is gone with the runtime's tasks.
    match Arc::try_unwrap(store) {
        Ok(s) => s.close()?,
        Err(s) => drop(s),
    }
    r?;
    println!("evlog serve: stopped, store closed");
    Ok(Outcome::Ok)
}

async fn serve_until_signal(c: &ServeConfig, store: Arc<Store>) -> Result<(), Failure> {
    let metrics = Arc::new(Metrics::new());
    let bus = if c.monitoring_enabled {
        EventBus::with_observer(store, c.bus.clone(), metrics.clone())
    } else {
        EventBus::new(store, c.bus.clone())
    };
    let monitor = Arc::new(Monitor::new(bus.clone(), metrics, c.health.clone()));
    let auth = if c.no_auth {
        Auth::Disabled
    } else {
        Auth::Tokens(c.tokens.clone())
    };
    let api = Api::new(monitor.clone(), auth);
    api.set_metrics_enabled(c.monitoring_enabled);
    // Installed before the address is printed: a SIGTERM from then on stops the server cleanly.
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(c.listen)
        .await
        .map_err(|e| Failure::usage(format!("listen on {}: {e}", c.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::usage(format!("listen on {}: {e}", c.listen)))?;
    println!(
        "evlog serve: listening on http://{addr} (store {})",
        bus.store().dir().display()
    );
    let _ = std::io::stdout().flush();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let export = match (c.monitoring_enabled, c.metrics_export_interval) {
        (true, Some(every)) => {
            let target = c
                .metrics_export_file
                .clone()
                .map_or(ExportTarget::Log, ExportTarget::File);
            Some(tokio::spawn(export_metrics_every(
                monitor.clone(),
                every,
                target,
                stop_rx,
            )))
        }
        _ => None,
    };
    let served = serve(listener, api, shutdown).await;
    stop.send_replace(true);
    if let Some(t) = export {
        let _ = t.await;
    }
    let stopped = bus.shutdown().await;
    served.map_err(|e| Failure::usage(format!("serve: {e}")))?;
    stopped.map_err(|e| Failure::usage(format!("stop the bus: {e}")))?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT; both handlers are installed when it is made.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind: SignalKind| {
        signal(kind).map_err(|e| Failure::usage(format!("install a signal handler: {e}")))
    };
    let mut term = install(SignalKind::terminate())?;
    let mut int = install(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("evlog serve: stopping (finishing requests in flight)");
    })
}
