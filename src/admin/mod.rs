//! The admin listener (`[admin]`): metrics, health, status and reload, on its own thread
//! ("coregate-admin") with its own small runtime, so it never runs on a worker's core loop and a
//! slow scraper cannot delay a request.
//!
//! It holds no counters of its own. Each request that needs numbers asks every worker for a
//! snapshot over the worker's control channel (`Control::Scrape`) and merges the answers that
//! arrive within [`SCRAPE_TIMEOUT`]; a worker that stays silent is named by `/healthz`. Health
//! check verdicts are read from the shared health table here, on this thread.
//!
//! - `GET /metrics`: Prometheus text format (OpenMetrics when the scraper asks for it)
//! - `GET /healthz`: 200 `ok` when every worker answered, else 503 naming the silent ones
//! - `GET /status`: JSON (config version, workers, listeners, routes, upstreams and endpoints)
//! - `GET /`: the status page (self-contained HTML that polls `/status`)
//! - `POST /reload`: reload the config file; 200 with the new version, 400 with why not
//!
//! With `admin.token` set every request needs `Authorization: Bearer <token>`; HTTP Basic with
//! the token as password (any user name) is accepted too, so a browser can open the status page.
//! The listener is not reloadable: a changed `[admin]` is logged and applies at the next start.

mod http;
mod status;

use crate::http::h1::Method;
use crate::metrics::encode::{self, Process};
use crate::metrics::Merged;
use crate::runtime::supervisor::Command;
use crate::runtime::worker::Control;
use futures_channel::mpsc::UnboundedSender;
use http::{Request, Response};
use monoio::net::TcpStream;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// How long a scrape waits for the workers' snapshots.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `POST /reload` waits for the supervisor's verdict.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Admin connections served at once; more wait in the kernel backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// The status page.
const PAGE: &str = include_str!("page.html");

/// What the admin thread is started with.
pub struct Spec {
    pub listener: TcpListener,
    pub token: Option<String>,
    /// Each worker's control channel, by worker index.
    pub controls: Vec<UnboundedSender<Control>>,
    pub commands: std::sync::mpsc::Sender<Command>,
    /// When the process started.
    pub started: SystemTime,
    /// Fires when a successor process (binary upgrade) took the admin socket over: stop
    /// accepting. Dropped without firing: keep serving.
    pub stop: futures_channel::oneshot::Receiver<()>,
}

/// Binds the admin address (before the workers start, so a taken port fails start-up), or takes
/// the socket inherited from the process this one upgrades.
pub fn bind(addr: SocketAddr, inherited: Option<TcpListener>) -> Result<TcpListener, String> {
    let l = match inherited {
        Some(l) => {
            info!(%addr, "admin socket inherited");
            l
        }
        None => TcpListener::bind(addr)
            .map_err(|e| format!("admin.listen {addr}: cannot listen: {e}"))?,
    };
    // The admin runtime's epoll driver expects non-blocking sockets.
    l.set_nonblocking(true)
        .map_err(|e| format!("admin.listen {addr}: {e}"))?;
    Ok(l)
}

/// Starts the admin thread.
pub fn start(spec: Spec) -> Result<(), String> {
    let addr = spec.listener.local_addr().ok();
    std::thread::Builder::new()
        .name("coregate-admin".into())
        .spawn(move || {
            let rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build();
            match rt {
                Ok(mut rt) => rt.block_on(serve(spec)),
                Err(e) => warn!(error = %e, "admin listener disabled: cannot start its runtime"),
            }
        })
        .map_err(|e| format!("cannot start the admin thread: {e}"))?;
    if let Some(addr) = addr {
        info!(%addr, "admin listening: GET /metrics /healthz /status /, POST /reload");
    }
    Ok(())
}

struct State {
    token: Option<String>,
    controls: Vec<UnboundedSender<Control>>,
    commands: std::sync::mpsc::Sender<Command>,
    process: Process,
    open: std::cell::Cell<usize>,
    room: crate::runtime::notify::Notify,
}

async fn serve(spec: Spec) {
    let listener = match monoio::net::TcpListener::from_std(spec.listener) {
        Ok(l) => l,
        Err(e) => return warn!(error = %e, "admin listener disabled: cannot register its socket"),
    };
    let state = Rc::new(State {
        token: spec.token,
        controls: spec.controls,
        commands: spec.commands,
        process: Process {
            started: spec.started,
        },
        open: Default::default(),
        room: Default::default(),
    });
    let mut stop = Some(spec.stop);
    loop {
        while state.open.get() >= MAX_CONNECTIONS {
            state.room.notified().await;
        }
        let accepted = match stop.as_mut() {
            None => listener.accept().await,
            Some(rx) => monoio::select! {
                r = listener.accept() => r,
                s = rx => {
                    if s.is_ok() {
                        info!("admin: the upgraded process serves the admin socket now; stopped accepting");
                        return;
                    }
                    stop = None;
                    continue;
                },
            },
        };
        match accepted {
            Ok((stream, _)) => {
                state.open.set(state.open.get() + 1);
                let state = state.clone();
                monoio::spawn(async move {
                    connection(&state, stream).await;
                    state.open.set(state.open.get() - 1);
                    state.room.notify_all();
                });
            }
            Err(e) => {
                warn!(error = %e, "admin accept failed; pausing");
                monoio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(state: &State, mut stream: TcpStream) {
    let req = match http::read(&mut stream).await {
        Ok(r) => r,
        Err(Some(resp)) => return http::write(&mut stream, &resp, false).await,
        Err(None) => return,
    };
    let resp = handle(state, &req).await;
    http::write(&mut stream, &resp, req.method == Method::Head).await;
}

/// Routes one request.
async fn handle(state: &State, req: &Request) -> Response {
    if !authorized(state.token.as_deref(), req.authorization.as_deref()) {
        return Response::text(401, "admin token required")
            .header(
                "www-authenticate",
                "Basic realm=\"coregate admin\", charset=\"UTF-8\"",
            )
            .header("www-authenticate", "Bearer realm=\"coregate admin\"");
    }
    let get = matches!(req.method, Method::Get | Method::Head);
    match req.path.as_str() {
        "/metrics" if get => {
            let openmetrics = req.accept.contains("application/openmetrics-text");
            let merged = scrape(state).await;
            let body = encode::encode(merged, state.process, openmetrics);
            let kind = if openmetrics {
                encode::OPENMETRICS_CONTENT_TYPE
            } else {
                encode::TEXT_CONTENT_TYPE
            };
            Response::new(200, kind, body)
        }
        "/healthz" if get => {
            let merged = scrape(state).await;
            if merged.silent.is_empty() {
                Response::text(200, "ok")
            } else {
                let silent: Vec<String> = merged.silent.iter().map(|w| w.to_string()).collect();
                Response::text(503, format!("workers not answering: {}", silent.join(", ")))
            }
        }
        "/status" if get => {
            let merged = scrape(state).await;
            let body = status::json(&merged, state.controls.len(), state.process);
            Response::new(200, "application/json", body.to_string())
        }
        "/" if get => Response::new(200, "text/html; charset=utf-8", PAGE),
        "/reload" if req.method == Method::Post => reload(state).await,
        "/metrics" | "/healthz" | "/status" | "/" => {
            Response::text(405, "method not allowed").header("allow", "GET, HEAD")
        }
        "/reload" => Response::text(405, "method not allowed").header("allow", "POST"),
        _ => Response::text(
            404,
            "not found: try /, /metrics, /healthz, /status or POST /reload",
        ),
    }
}

/// Whether the request may pass: no token configured, or `Bearer <token>`, or Basic with the
/// token as password. Compared in constant time.
fn authorized(token: Option<&str>, header: Option<&[u8]>) -> bool {
    use base64::Engine;
    use subtle::ConstantTimeEq;
    let Some(token) = token else { return true };
    let Some(header) = header else { return false };
    let header = String::from_utf8_lossy(header);
    let (scheme, cred) = header.trim().split_once(' ').unwrap_or(("", ""));
    let cred = cred.trim();
    let offered = if scheme.eq_ignore_ascii_case("bearer") {
        cred.as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(cred) else {
            return false;
        };
        match decoded.iter().position(|&b| b == b':') {
            Some(i) => decoded[i + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    offered.ct_eq(token.as_bytes()).into()
}

/// Asks every worker for a snapshot and merges those that answer within `SCRAPE_TIMEOUT`.
async fn scrape(state: &State) -> Merged {
    let deadline = monoio::time::Instant::now() + SCRAPE_TIMEOUT;
    let mut pending = Vec::with_capacity(state.controls.len());
    let mut silent = Vec::new();
    for (i, c) in state.controls.iter().enumerate() {
        let (tx, rx) = futures_channel::oneshot::channel();
        match c.unbounded_send(Control::Scrape(tx)) {
            Ok(()) => pending.push((i, rx)),
            Err(_) => silent.push(i),
        }
    }
    let mut snapshots = Vec::with_capacity(pending.len());
    for (i, rx) in pending {
        match monoio::time::timeout_at(deadline, rx).await {
            Ok(Ok(s)) => snapshots.push(s),
            _ => silent.push(i),
        }
    }
    silent.sort_unstable();
    Merged::new(snapshots, silent)
}

/// `POST /reload`: the supervisor reloads as on SIGHUP; this waits for its verdict (on a helper
/// thread: the supervisor answers on a blocking channel).
async fn reload(state: &State) -> Response {
    info!("admin: POST /reload");
    let (tx, rx) = std::sync::mpsc::channel();
    if state.commands.send(Command::Reload(Some(tx))).is_err() {
        return Response::text(503, "stopping: reload not possible");
    }
    let (done_tx, done_rx) = futures_channel::oneshot::channel();
    let waiter = std::thread::Builder::new()
        .name("coregate-admin-reload".into())
        .spawn(move || {
            let _ = done_tx.send(rx.recv_timeout(RELOAD_TIMEOUT));
        });
    if waiter.is_err() {
        return Response::text(500, "cannot wait for the reload");
    }
    match done_rx.await {
        Ok(Ok(Ok(version))) => Response::text(200, format!("reloaded: config version {version}")),
        Ok(Ok(Err(e))) => Response::text(
            400,
            format!("reload refused; the running config is unchanged: {e}"),
        ),
        _ => Response::text(504, "the reload did not finish in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::authorized;

    #[test]
    fn token_checks() {
        let t = Some("0123456789abcdef");
        assert!(authorized(None, None));
        assert!(!authorized(t, None));
        assert!(authorized(t, Some(b"Bearer 0123456789abcdef")));
        assert!(authorized(t, Some(b"bearer  0123456789abcdef ")));
        assert!(!authorized(t, Some(b"Bearer 0123456789abcdeX")));
        assert!(!authorized(t, Some(b"Bearer 0123456789abcde")));
        // Basic, any user: "ops:0123456789abcdef".
        assert!(authorized(t, Some(b"Basic b3BzOjAxMjM0NTY3ODlhYmNkZWY=")));
        assert!(!authorized(t, Some(b"Basic b3BzOndyb25n")));
        assert!(!authorized(t, Some(b"Token 0123456789abcdef")));
    }
}
