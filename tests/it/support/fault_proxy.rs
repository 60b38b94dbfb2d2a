//! A fault proxy in front of a real registry: per repository (the request path `/v2/<repository>/…`)
//! it answers as a broken or hostile registry would — invalid, truncated or mistyped JSON, a body cut
//! off mid-stream, 200,000 tags over pages, a `Link` loop, a page that repeats, tags built to inject
//! text, a request accepted and never answered, 5xx and 429 bursts (with any `Retry-After`), a
//! redirect to another host — and forwards everything else to the registry unchanged. It can demand
//! HTTP basic credentials (so the client has some to leak), and counts requests per repository so a
//! test can bound them. [`Recorder`] is the "other host" a redirect points at: it records every request
//! it receives and asks for credentials.
//!
//! Scaffolding like `support::proxy` (which covers pagination quirks of honest registries); the
//! registry behind it and the client under test are real. Runs on real time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// What the proxy does to the requests for one repository.
#[derive(Clone, Debug)]
pub enum Fault {
    /// `tags/list` answers 200 with this body (invalid, truncated or mistyped JSON).
    TagsBody(String),
    /// `tags/list` answers 200, sends the start of a body, then drops the connection.
    CutBody,
    /// `tags/list` serves `count` tags (`1.0.0` … `1.0.<count-1>`) in pages of at most `page`, linked
    /// with `Link: <…>; rel="next"`.
    ManyTags { count: usize, page: usize },
    /// `tags/list` pages 1 → 2 → 3 → 2: the third page's `Link` points back at the second.
    LinkLoop,
    /// Every `tags/list` page holds the same tags and links to a new URL (a registry ignoring `last`).
    RepeatedPage,
    /// The registry's `tags/list` answer with these tags appended.
    InjectTags(Vec<String>),
    /// Every request is accepted and never answered.
    Hang,
    /// The first `times` requests (any path) are answered `status` with `body`, with a `Retry-After`
    /// header when set; later ones are forwarded.
    Status {
        status: u16,
        times: usize,
        retry_after: Option<String>,
        body: String,
    },
    /// Every request is redirected (307) to the same path and query on `target` (`http://host:port`).
    Redirect { target: String },
}

pub struct FaultProxy {
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<ProxyState>,
    server: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    upstream: String,
    faults: HashMap<String, Fault>,
    /// `Authorization` every request must carry (else 401 with a Basic challenge), when set.
    basic: Option<String>,
    http: reqwest::Client,
    /// Requests received per repository (`""` for paths naming none, like `/v2/`).
    requests: Mutex<HashMap<String, usize>>,
    /// Answers served so far per repository under a `Status` fault.
    refused: Mutex<HashMap<String, usize>>,
    repeated: AtomicUsize,
}

impl FaultProxy {
    /// Starts in front of `upstream` (`http://host:port`) on a free loopback port, with `faults` per
    /// repository, demanding `basic` (user, password) credentials when given.
    pub async fn start(
        upstream: &str,
        faults: Vec<(&str, Fault)>,
        basic: Option<(&str, &str)>,
    ) -> FaultProxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            faults: faults
                .into_iter()
                .map(|(repository, fault)| (repository.to_string(), fault))
                .collect(),
            basic: basic.map(|(user, password)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )
            }),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            requests: Mutex::default(),
            refused: Mutex::default(),
            repeated: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultProxy {
            host,
            state,
            server,
        }
    }

    /// Requests received for `repository` so far.
    pub fn requests_for(&self, repository: &str) -> usize {
        self.state
            .requests
            .lock()
            .unwrap()
            .get(repository)
            .copied()
            .unwrap_or(0)
    }

    /// Requests received per repository so far.
    pub fn requests(&self) -> HashMap<String, usize> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The repository a registry API path names, and what follows it (`tags/list`, `manifests/…`, …).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    ["/tags/", "/manifests/", "/blobs/"]
        .iter()
        .find_map(|marker| {
            rest.find(marker)
                .map(|index| (&rest[..index], &rest[index + 1..]))
        })
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let (repository, rest) = split_path(&path).unwrap_or(("", ""));
    let repository = repository.to_string();
    *state
        .requests
        .lock()
        .unwrap()
        .entry(repository.clone())
        .or_default() += 1;
    if let Some(expected) = &state.basic
        && request
            .headers()
            .get("authorization")
            .is_none_or(|value| value.as_bytes() != expected.as_bytes())
    {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
        )
            .into_response();
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"fault-proxy\""),
        );
        return response;
    }
    let is_tag_list = rest == "tags/list";
    match state.faults.get(&repository) {
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::Status {
            status,
            times,
            retry_after,
            body,
        }) => {
            let mut refused = state.refused.lock().unwrap();
            let served = refused.entry(repository.clone()).or_default();
            if *served < *times {
                *served += 1;
                let mut response =
                    (StatusCode::from_u16(*status).unwrap(), body.clone()).into_response();
                if let Some(value) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from_str(value).unwrap());
                }
                return response;
            }
        }
        Some(Fault::Redirect { target }) => {
            let location = match &query {
                Some(query) => format!("{target}{path}?{query}"),
                None => format!("{target}{path}"),
            };
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            response
                .headers_mut()
                .insert("location", HeaderValue::from_str(&location).unwrap());
            return response;
        }
        Some(fault) if is_tag_list => {
            if let Some(response) = tag_fault(&state, fault, &repository, query.as_deref()) {
                return response;
            }
        }
        _ => {}
    }
    let response = forward(&state, request, &path, query.as_deref()).await;
    match (state.faults.get(&repository), is_tag_list) {
        (Some(Fault::InjectTags(extra)), true) => inject(response, extra).await,
        _ => response,
    }
}

/// The answer of a `tags/list` fault the proxy makes up itself; `None` to forward the request.
fn tag_fault(
    state: &ProxyState,
    fault: &Fault,
    repository: &str,
    query: Option<&str>,
) -> Option<Response> {
    let page = |tags: Vec<String>, next: Option<String>| {
        let mut response =
            axum::Json(serde_json::json!({ "name": repository, "tags": tags })).into_response();
        if let Some(next) = next {
            response.headers_mut().insert(
                "link",
                HeaderValue::from_str(&format!(
                    "</v2/{repository}/tags/list?{next}>; rel=\"next\""
                ))
                .unwrap(),
            );
        }
        response
    };
    let parameter = |name: &str| {
        query
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(match fault {
        Fault::TagsBody(body) => (
            [("content-type", "application/json")],
            Bytes::from(body.clone()),
        )
            .into_response(),
        Fault::CutBody => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(
                    b"{\"name\":\"cut\",\"tags\":[\"1.0.0\",",
                )),
                Err(std::io::Error::other("connection cut by the fault proxy")),
            ];
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap()
        }
        Fault::ManyTags { count, page: size } => {
            let start: usize = parameter("last")
                .and_then(|last| last.rsplit('.').next()?.parse::<usize>().ok())
                .map_or(0, |last| last + 1);
            let size = parameter("n")
                .and_then(|n| n.parse::<usize>().ok())
                .map_or(*size, |n| n.min(*size));
            let end = (start + size).min(*count);
            let tags = (start..end).map(|index| format!("1.0.{index}")).collect();
            let next = (end < *count).then(|| format!("n={size}&last=1.0.{}", end - 1));
            page(tags, next)
        }
        Fault::LinkLoop => match parameter("page").as_deref() {
            None => page(vec!["1.0.1".into()], Some("page=2".into())),
            Some("2") => page(vec!["1.0.2".into()], Some("page=3".into())),
            Some(_) => page(vec!["1.0.3".into()], Some("page=2".into())),
        },
        Fault::RepeatedPage => {
            let next = state.repeated.fetch_add(1, Ordering::SeqCst);
            page(
                vec!["1.0.1".into(), "1.0.2".into()],
                Some(format!("last=1.0.2&page={next}")),
            )
        }
        _ => return None,
    })
}

async fn forward(
    state: &ProxyState,
    request: Request,
    path: &str,
    query: Option<&str>,
) -> Response {
    let url = match query {
        Some(query) => format!("{}{path}?{query}", state.upstream),
        None => format!("{}{path}", state.upstream),
    };
    let mut forwarded = state.http.request(request.method().clone(), &url);
    for (name, value) in request.headers() {
        if ["accept", "content-type"].contains(&name.as_str()) {
            forwarded = forwarded.header(name, value);
        }
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let answer = match forwarded.body(body).send().await {
        Ok(answer) => answer,
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if !["transfer-encoding", "connection", "content-length"].contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(body)).unwrap()
}

async fn inject(response: Response, extra: &[String]) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let mut list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let tags = list["tags"].as_array_mut().expect("a tag list");
    tags.extend(extra.iter().cloned().map(serde_json::Value::String));
    axum::Json(list).into_response()
}

/// The other host a redirect leads to: records every request (method, URI, headers) and answers each
/// with 401 and a Bearer challenge whose realm is its own `/token` — where a client that followed
/// would send its credentials.
pub struct Recorder {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let realm = format!("{url}/token");
        let app = axum::Router::new()
            .fallback(
                move |State(seen): State<Arc<Mutex<Vec<String>>>>, request: Request| {
                    let realm = realm.clone();
                    async move {
                        let mut text = format!("{} {}\n", request.method(), request.uri());
                        for (name, value) in request.headers() {
                            text.push_str(&format!(
                                "{name}: {}\n",
                                String::from_utf8_lossy(value.as_bytes())
                            ));
                        }
                        let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                            .await
                            .unwrap_or_default();
                        text.push_str(&String::from_utf8_lossy(&body));
                        seen.lock().unwrap().push(text);
                        let mut response = StatusCode::UNAUTHORIZED.into_response();
                        response.headers_mut().insert(
                            "www-authenticate",
                            HeaderValue::from_str(&format!(
                                "Bearer realm=\"{realm}\",service=\"elsewhere\""
                            ))
                            .unwrap(),
                        );
                        response
                    }
                },
            )
            .with_state(seen.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Recorder { url, seen, server }
    }

    /// Every request received so far, as text (request line, headers, body).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}
