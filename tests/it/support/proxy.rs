//! A small HTTP proxy in front of a real registry, for behaviour distribution 2.8 does not have
//! (scaffolding, like the token issuer): OCI `tags/list` pagination with `Link` (and its real-world
//! quirks), a 400 for a page size `n` above a maximum (distribution 3.1.0), 429 + `Retry-After` before
//! answering, and extra tags (hostile ones, or very many) injected into `tags/list`. Everything else
//! is forwarded unchanged.
//!
//! Paused test time: the proxy runs in the test's runtime, but talks to the registry from a runtime of
//! its own, waited for in `spawn_blocking`. A blocking task stops a paused clock from auto-advancing,
//! so while the registry (another process) is answering, no timer of the client under test (its
//! request timeout) fires early; only the client's own sleeps advance the clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// How a paginating proxy writes its `Link` targets.
#[derive(Clone, Copy, Debug)]
pub enum LinkStyle {
    /// `</v2/…>`, as the OCI spec shows.
    Relative,
    /// `<http://127.0.0.1/v2/…>`: the port is lost (a registry behind a port-mapping proxy).
    WithoutPort,
    /// `<http://registry.internal:5000/v2/…>`: the registry's own internal host name.
    InternalHost,
}

/// How a paginating proxy treats `last`.
#[derive(Clone, Copy, Debug)]
pub enum Last {
    /// As the spec says: the page starts after `last`.
    Honour,
    /// The page starts *at* `last`: every page repeats the previous page's last tag.
    Overlap,
    /// `last` is ignored: every page is the first page, with the same `Link`.
    Ignore,
}

#[derive(Clone, Debug)]
pub enum Mode {
    /// Serve `tags/list` in pages of at most `page` tags (sorted lexically, `n` and `last` honoured);
    /// `last` says how the `last` parameter is treated.
    Paginate {
        page: usize,
        link: LinkStyle,
        last: Last,
    },
    /// Answer the first `failures` requests with `status` (429, 503, …), with
    /// `Retry-After: retry_after_seconds` when set.
    Refuse {
        failures: usize,
        status: u16,
        retry_after_seconds: Option<u64>,
    },
    /// Append these tags (hostile ones, or very many) to every `tags/list` answer.
    InjectTags(Vec<String>),
    /// Answer `tags/list` with 400 `PAGINATION_NUMBER_INVALID` when `n` is above `max`, as
    /// distribution 3.1.0 does above its `tags.maxtags`; forward everything else.
    RejectPageSize { max: usize },
}

pub struct Proxy {
    /// `127.0.0.1:PORT`
    pub host: String,
    /// Requests received, all paths.
    pub requests: Arc<AtomicUsize>,
    /// `tags/list` requests received.
    pub tag_pages: Arc<AtomicUsize>,
    /// The query string of every `tags/list` request, in order (`""` for none).
    pub tag_queries: Arc<Mutex<Vec<String>>>,
    /// The most requests that were in flight at once.
    pub max_in_flight: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
    /// Dropping it stops the upstream runtime's thread.
    _stop_upstream: tokio::sync::oneshot::Sender<()>,
}

struct ProxyState {
    upstream: String,
    mode: Mode,
    http: reqwest::Client,
    /// The runtime (on its own thread) that talks to the upstream registry.
    upstream_runtime: tokio::runtime::Handle,
    requests: Arc<AtomicUsize>,
    tag_pages: Arc<AtomicUsize>,
    tag_queries: Arc<Mutex<Vec<String>>>,
    in_flight: AtomicUsize,
    max_in_flight: Arc<AtomicUsize>,
}

impl Proxy {
    /// Starts in front of `upstream` (`http://host:port`) on a free loopback port.
    pub async fn start(upstream: &str, mode: Mode) -> Proxy {
        let requests = Arc::new(AtomicUsize::new(0));
        let tag_pages = Arc::new(AtomicUsize::new(0));
        let tag_queries = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (upstream_runtime, stop_upstream) = upstream_runtime();
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            mode,
            http: reqwest::Client::builder()
                .tcp_nodelay(true)
                .build()
                .unwrap(),
            upstream_runtime,
            requests: requests.clone(),
            tag_pages: tag_pages.clone(),
            tag_queries: tag_queries.clone(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let app = axum::Router::new().fallback(handle).with_state(state);
        let server = tokio::spawn(async move {
            // TCP_NODELAY: without it, Nagle + delayed ACK add ~40 ms per keep-alive response.
            let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
                let _ = stream.set_nodelay(true);
            });
            axum::serve(listener, app).await.unwrap();
        });
        Proxy {
            host,
            requests,
            tag_pages,
            tag_queries,
            max_in_flight,
            server,
            _stop_upstream: stop_upstream,
        }
    }

    /// The query strings of the `tags/list` requests so far.
    pub fn tag_queries(&self) -> Vec<String> {
        self.tag_queries.lock().unwrap().clone()
    }
}

/// A one-thread runtime of the proxy's own, for its requests to the registry, and the sender whose drop
/// stops it (the runtime is dropped on its own thread, never inside the test's runtime).
fn upstream_runtime() -> (tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>) {
    let (handle_sender, handle_receiver) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        handle_sender.send(runtime.handle().clone()).unwrap();
        runtime.block_on(async {
            let _ = stopped.await;
        });
    });
    (handle_receiver.recv().unwrap(), stop)
}

/// A forwarded answer: status, headers, body.
type Upstream = Result<
    (
        reqwest::StatusCode,
        reqwest::header::HeaderMap,
        axum::body::Bytes,
    ),
    String,
>;

impl ProxyState {
    /// Sends `request` to the registry from the upstream runtime and waits for the whole answer in a
    /// blocking task (which keeps a paused clock from auto-advancing meanwhile).
    async fn upstream(&self, request: reqwest::RequestBuilder) -> Upstream {
        let (answer, answered) = std::sync::mpsc::channel();
        self.upstream_runtime.spawn(async move {
            let result = async {
                let response = request.send().await?;
                let status = response.status();
                let headers = response.headers().clone();
                Ok((status, headers, response.bytes().await?))
            }
            .await
            .map_err(|error: reqwest::Error| error.to_string());
            let _ = answer.send(result);
        });
        tokio::task::spawn_blocking(move || {
            answered
                .recv()
                .unwrap_or_else(|_| Err("the upstream runtime stopped".to_string()))
        })
        .await
        .unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
    let response = forward(&state, request).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn forward(state: &ProxyState, request: Request) -> Response {
    let served = state.requests.fetch_add(1, Ordering::SeqCst);
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let is_tag_list = path.starts_with("/v2/") && path.ends_with("/tags/list");
    if is_tag_list {
        state.tag_pages.fetch_add(1, Ordering::SeqCst);
        state
            .tag_queries
            .lock()
            .unwrap()
            .push(query.clone().unwrap_or_default());
    }
    if let Mode::RejectPageSize { max } = &state.mode
        && is_tag_list
        && let Some(n) = parameter(query.as_deref(), "n").and_then(|n| n.parse::<usize>().ok())
        && n > *max
    {
        let body = format!(
            r#"{{"errors":[{{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested","detail":{{"n":{n}}}}}]}}"#
        );
        return (StatusCode::BAD_REQUEST, body).into_response();
    }
    if let Mode::Refuse {
        failures,
        status,
        retry_after_seconds,
    } = &state.mode
        && served < *failures
    {
        let body = if *status == 429 {
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#
        } else {
            "upstream unavailable"
        };
        let mut response = (StatusCode::from_u16(*status).unwrap(), body).into_response();
        if let Some(seconds) = retry_after_seconds {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(*seconds));
        }
        return response;
    }
    let upstream_query = if is_tag_list && matches!(state.mode, Mode::Paginate { .. }) {
        None // the proxy pages itself; the upstream always returns everything
    } else {
        query.clone()
    };
    let url = match &upstream_query {
        Some(query) => format!("{}{path}?{query}", state.upstream),
        None => format!("{}{path}", state.upstream),
    };
    let method = request.method().clone();
    let mut forwarded = state.http.request(method, &url);
    for (name, value) in request.headers() {
        if ["accept", "authorization", "content-type"].contains(&name.as_str()) {
            forwarded = forwarded.header(name, value);
        }
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let (status, headers, body) = match state.upstream(forwarded.body(body)).await {
        Ok(answer) => answer,
        Err(error) => return (StatusCode::BAD_GATEWAY, error).into_response(),
    };
    if is_tag_list && status.is_success() {
        match &state.mode {
            Mode::Paginate { page, link, last } => {
                return paginate(&body, query.as_deref(), &path, *page, *link, *last);
            }
            Mode::InjectTags(extra) => return inject(&body, extra),
            Mode::Refuse { .. } | Mode::RejectPageSize { .. } => {}
        }
    }
    let mut response = Response::builder().status(status.as_u16());
    for (name, value) in &headers {
        if !["transfer-encoding", "connection", "content-length"].contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(body)).unwrap()
}

#[derive(serde::Deserialize, serde::Serialize)]
struct TagList {
    name: String,
    tags: Option<Vec<String>>,
}

fn paginate(
    body: &[u8],
    query: Option<&str>,
    path: &str,
    page: usize,
    link: LinkStyle,
    last: Last,
) -> Response {
    let mut list: TagList = serde_json::from_slice(body).unwrap();
    let mut tags = list.tags.take().unwrap_or_default();
    tags.sort();
    let parameter = |name: &str| parameter(query, name);
    let n = parameter("n")
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(page, |n| n.min(page));
    let start = match (parameter("last"), last) {
        (Some(last), Last::Honour) => tags.partition_point(|tag| *tag <= last),
        (Some(last), Last::Overlap) => tags.partition_point(|tag| *tag < last),
        (_, Last::Ignore) | (None, _) => 0,
    };
    let end = (start + n).min(tags.len());
    let page_tags = tags[start..end].to_vec();
    let mut response = axum::Json(TagList {
        name: list.name,
        tags: Some(page_tags.clone()),
    })
    .into_response();
    if end < tags.len() {
        let target = format!("{path}?last={}&n={n}", page_tags.last().unwrap());
        let target = match link {
            LinkStyle::Relative => target,
            LinkStyle::WithoutPort => format!("http://127.0.0.1{target}"),
            LinkStyle::InternalHost => format!("http://registry.internal:5000{target}"),
        };
        response.headers_mut().insert(
            "link",
            HeaderValue::from_str(&format!("<{target}>; rel=\"next\"")).unwrap(),
        );
    }
    response
}

/// The value of query parameter `name`, if present.
fn parameter(query: Option<&str>, name: &str) -> Option<String> {
    query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
}

fn inject(body: &[u8], extra: &[String]) -> Response {
    let mut list: TagList = serde_json::from_slice(body).unwrap();
    list.tags
        .get_or_insert_default()
        .extend(extra.iter().cloned());
    axum::Json(list).into_response()
}
