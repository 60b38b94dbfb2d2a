//! A fake Kubernetes API server for `coordination.k8s.io/v1` Leases only — no API server can run here.
//! Like the fake forge, it checks every request and every response it sends against the vendored
//! OpenAPI document (`tests/kubernetes-api/`): the method and path must be an operation of the
//! document, query parameters must be declared by it, bodies must validate (strictly) as a `Lease`,
//! answers as a `Lease` or a `Status`. Anything off is recorded in [`FakeKube::problems`] and answered
//! `400` as the API server would. It keeps the API server's optimistic concurrency: a `PUT` whose
//! `metadata.resourceVersion` is not the current one is a `409 Conflict`, a `POST` of an existing name
//! a `409 AlreadyExists`. [`FakeKube::fail`] makes it answer `500` to everything (an unreachable
//! control plane).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::kube_schema::{KubernetesSchemas, document_path};

const API_VERSION: &str = "coordination.k8s.io/v1";

/// One write that changed a Lease: who held it afterwards, and the Lease's resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub holder: Option<String>,
    pub resource_version: u64,
}

struct State {
    token: String,
    /// Operation templates of the document: (method, path template) → declared query parameters.
    operations: Vec<(Method, String, Vec<String>)>,
    leases: Mutex<HashMap<(String, String), Value>>,
    version: AtomicU64,
    failing: AtomicBool,
    problems: Mutex<Vec<String>>,
    writes: Mutex<Vec<Write>>,
}

pub struct FakeKube {
    pub url: String,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeKube {
    /// Serves on a free loopback port; clients must send `Authorization: Bearer TOKEN`.
    pub async fn start(token: &str) -> FakeKube {
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(document_path(API_VERSION)).unwrap())
                .unwrap();
        let operations = operations(&document);
        let state = Arc::new(State {
            token: token.to_string(),
            operations,
            leases: Mutex::new(HashMap::new()),
            version: AtomicU64::new(1000),
            failing: AtomicBool::new(false),
            problems: Mutex::new(Vec::new()),
            writes: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { state.handle(method, uri, headers, body) }
            },
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeKube { url, state, server }
    }

    /// A kubeconfig file at `path` for this server (namespace `namespace`, the bearer token).
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n  - name: fake\n    cluster:\n      server: {}\nusers:\n  - name: tagwatch\n    user:\n      token: {}\ncontexts:\n  - name: fake\n    context:\n      cluster: fake\n      user: tagwatch\n      namespace: {namespace}\ncurrent-context: fake\n",
                self.url, self.state.token
            ),
        )
        .unwrap();
    }

    /// Answer 500 to everything (`true`) or serve again (`false`).
    pub fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// Every request or response that broke the API description, or the auth rule.
    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }

    /// Every successful write, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.state.writes.lock().unwrap().clone()
    }

    /// The Lease's holder now.
    pub fn holder(&self, namespace: &str, name: &str) -> Option<String> {
        self.state
            .leases
            .lock()
            .unwrap()
            .get(&(namespace.to_string(), name.to_string()))
            .and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_string))
    }

    /// The Lease as stored.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .leases
            .lock()
            .unwrap()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// (method, path template, query parameter names) of every operation in the document.
fn operations(document: &Value) -> Vec<(Method, String, Vec<String>)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let shared: Vec<String> = parameter_names(&item["parameters"], "query");
        for (method, operation) in item.as_object().unwrap() {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            let mut query = shared.clone();
            query.extend(parameter_names(&operation["parameters"], "query"));
            operations.push((method, path.clone(), query));
        }
    }
    operations
}

fn parameter_names(parameters: &Value, location: &str) -> Vec<String> {
    parameters
        .as_array()
        .map(|parameters| {
            parameters
                .iter()
                .filter(|parameter| parameter["in"] == location)
                .filter_map(|parameter| parameter["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `path` against `template` (`{name}` segments match one non-empty segment): the captured values.
fn matches(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let template: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if template.len() != path.len() {
        return None;
    }
    let mut captured = HashMap::new();
    for (expected, actual) in template.iter().zip(&path) {
        if let Some(name) = expected.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if actual.is_empty() {
                return None;
            }
            captured.insert(name.to_string(), actual.to_string());
        } else if expected != actual {
            return None;
        }
    }
    Some(captured)
}

fn status(code: u16, reason: &str, message: &str, name: Option<&str>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(name) = name {
        status["details"] = json!({"name": name, "group": "coordination.k8s.io", "kind": "leases"});
    }
    status
}

impl State {
    fn problem(&self, problem: String) {
        self.problems.lock().unwrap().push(problem);
    }

    /// The answer, checked against the schema of its kind before it leaves.
    fn answer(&self, code: u16, body: Value) -> Response {
        let problems = KubernetesSchemas::get().problems(&body);
        for problem in problems {
            self.problem(format!("response {code}: {problem}"));
        }
        (
            StatusCode::from_u16(code).unwrap(),
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = uri.path().to_string();
        let authorized = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value == format!("Bearer {}", self.token));
        if !authorized {
            self.problem(format!("{method} {path}: no or wrong bearer token"));
            return self.answer(401, status(401, "Unauthorized", "Unauthorized", None));
        }
        let Some((template, captured, query)) = self.operations.iter().find_map(|(m, t, q)| {
            (m == method).then(|| matches(t, &path).map(|c| (t.clone(), c, q.clone())))?
        }) else {
            self.problem(format!(
                "{method} {path}: not an operation of the API description"
            ));
            return self.answer(
                404,
                status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    None,
                ),
            );
        };
        for pair in uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
        {
            let name = pair.split('=').next().unwrap_or_default();
            if !query.iter().any(|declared| declared == name) {
                self.problem(format!(
                    "{method} {template}: undeclared query parameter {name}"
                ));
            }
        }
        if self.failing.load(Ordering::SeqCst) {
            return self.answer(
                500,
                status(500, "InternalError", "etcdserver: request timed out", None),
            );
        }
        let namespace = captured.get("namespace").cloned().unwrap_or_default();
        let request = if method == Method::POST || method == Method::PUT {
            let Ok(lease) = serde_json::from_slice::<Value>(&body) else {
                self.problem(format!("{method} {template}: the body is not JSON"));
                return self.answer(400, status(400, "BadRequest", "the body is not JSON", None));
            };
            let problems = KubernetesSchemas::get().problems(&lease);
            if lease["apiVersion"] != API_VERSION
                || lease["kind"] != "Lease"
                || !problems.is_empty()
            {
                self.problem(format!(
                    "{method} {template}: not a valid Lease: {problems:?} {lease}"
                ));
                return self.answer(400, status(400, "BadRequest", "not a valid Lease", None));
            }
            Some(lease)
        } else {
            None
        };
        let mut leases = self.leases.lock().unwrap();
        match (method.as_str(), template.as_str()) {
            ("GET", "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}") => {
                let name = &captured["name"];
                match leases.get(&(namespace.clone(), name.clone())) {
                    Some(lease) => self.answer(200, lease.clone()),
                    None => self.answer(
                        404,
                        status(
                            404,
                            "NotFound",
                            &format!("leases.coordination.k8s.io \"{name}\" not found"),
                            Some(name),
                        ),
                    ),
                }
            }
            ("POST", "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases") => {
                let mut lease = request.unwrap();
                let Some(name) = lease["metadata"]["name"].as_str().map(str::to_string) else {
                    self.problem(format!("POST {template}: no metadata.name"));
                    return self.answer(
                        422,
                        status(422, "Invalid", "metadata.name: Required value", None),
                    );
                };
                let key = (namespace.clone(), name.clone());
                if leases.contains_key(&key) {
                    return self.answer(
                        409,
                        status(
                            409,
                            "AlreadyExists",
                            &format!("leases.coordination.k8s.io \"{name}\" already exists"),
                            Some(&name),
                        ),
                    );
                }
                let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
                lease["metadata"]["namespace"] = json!(namespace);
                lease["metadata"]["resourceVersion"] = json!(version.to_string());
                lease["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{version:012}"));
                lease["metadata"]["creationTimestamp"] = json!("2026-11-26T12:00:00Z");
                self.wrote(&lease, version);
                leases.insert(key, lease.clone());
                self.answer(201, lease)
            }
            ("PUT", "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}") => {
                let mut lease = request.unwrap();
                let name = captured["name"].clone();
                if lease["metadata"]["name"] != json!(name) {
                    self.problem(format!("PUT {template}: metadata.name is not {name}"));
                    return self.answer(
                        400,
                        status(
                            400,
                            "BadRequest",
                            "the name of the object does not match the name on the URL",
                            None,
                        ),
                    );
                }
                let key = (namespace.clone(), name.clone());
                let Some(current) = leases.get(&key) else {
                    return self.answer(
                        404,
                        status(
                            404,
                            "NotFound",
                            &format!("leases.coordination.k8s.io \"{name}\" not found"),
                            Some(&name),
                        ),
                    );
                };
                let Some(sent) = lease["metadata"]["resourceVersion"].as_str() else {
                    self.problem(format!(
                        "PUT {template}: no metadata.resourceVersion (an unconditional update)"
                    ));
                    return self.answer(
                        422,
                        status(
                            422,
                            "Invalid",
                            "metadata.resourceVersion: must be specified for an update",
                            Some(&name),
                        ),
                    );
                };
                if current["metadata"]["resourceVersion"] != json!(sent) {
                    return self.answer(409, status(409, "Conflict", &format!("Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"), Some(&name)));
                }
                let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
                lease["metadata"]["resourceVersion"] = json!(version.to_string());
                for kept in ["uid", "creationTimestamp", "namespace"] {
                    lease["metadata"][kept] = current["metadata"][kept].clone();
                }
                self.wrote(&lease, version);
                leases.insert(key, lease.clone());
                self.answer(200, lease)
            }
            _ => {
                self.problem(format!(
                    "{method} {template}: an operation the fake does not serve"
                ));
                self.answer(
                    405,
                    status(
                        405,
                        "MethodNotAllowed",
                        "the fake serves get, create and update",
                        None,
                    ),
                )
            }
        }
    }

    fn wrote(&self, lease: &Value, version: u64) {
        self.writes.lock().unwrap().push(Write {
            holder: lease["spec"]["holderIdentity"].as_str().map(str::to_string),
            resource_version: version,
        });
    }
}
