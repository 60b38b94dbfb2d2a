//! A token service for `auth: token` registries (scaffolding: the registry's challenge flow is real).
//! It answers `GET /token?service=…&scope=…` with an ES256 JWT whose `x5c` chain ends at a CA the
//! registry trusts (`rootcertbundle`), checking HTTP basic credentials and granting every requested
//! action to a known user and nothing to anyone else. A test can hold the answers for one scope (a slow
//! token service for one repository) and wait until requests for a scope have arrived.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{CertificateParams, KeyPair, KeyUsagePurpose};

pub const ISSUER: &str = "tagwatch-test-issuer";
/// Token lifetime unless a test asks for less: long enough that no test sees an expiry by accident,
/// short like real issuers.
pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 300;

pub struct TokenIssuer {
    pub realm: String,
    pub service: String,
    /// PEM of the CA that signs the token signing certificate: the registry's `rootcertbundle`.
    pub root_bundle_pem: String,
    /// Tokens issued so far (including empty-access ones for anonymous requests).
    pub issued: Arc<AtomicUsize>,
    /// Every token served, so a test can assert none of them leaks into logs.
    pub served: Arc<Mutex<Vec<String>>>,
    state: Arc<IssuerState>,
    _server: tokio::task::JoinHandle<()>,
}

struct IssuerState {
    service: String,
    users: HashMap<String, String>,
    key: EncodingKey,
    chain: Vec<String>,
    issued: Arc<AtomicUsize>,
    served: Arc<Mutex<Vec<String>>>,
    ttl_seconds: u64,
    /// Token requests received per requested scope, held ones included.
    requests: tokio::sync::watch::Sender<HashMap<String, usize>>,
    /// Scopes whose answers wait until their [`Hold`] is dropped.
    holds: Mutex<HashMap<String, tokio::sync::watch::Receiver<()>>>,
}

/// While it lives, token requests for its scope are received but not answered.
pub struct Hold {
    state: Arc<IssuerState>,
    scope: String,
    _release: tokio::sync::watch::Sender<()>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        // Removing the receiver and dropping the sender wakes every waiting request.
        self.state.holds.lock().unwrap().remove(&self.scope);
    }
}

impl TokenIssuer {
    /// Starts on a free loopback port; `users` are (username, password) pairs.
    pub async fn start(service: &str, users: &[(&str, &str)], ttl_seconds: u64) -> TokenIssuer {
        let (ca_cert, ca_issuer) = super::registry::generate_ca("tagwatch test token root");

        let signing_key = KeyPair::generate().unwrap();
        let mut signing_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        signing_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        signing_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tagwatch test token signer");
        let signing_cert = signing_params.signed_by(&signing_key, &ca_issuer).unwrap();
        let chain = vec![base64::engine::general_purpose::STANDARD.encode(signing_cert.der())];
        let key = EncodingKey::from_ec_pem(signing_key.serialize_pem().as_bytes()).unwrap();

        let issued = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(IssuerState {
            service: service.to_string(),
            users: users
                .iter()
                .map(|(user, password)| (user.to_string(), password.to_string()))
                .collect(),
            key,
            chain,
            issued: issued.clone(),
            served: served.clone(),
            ttl_seconds,
            requests: tokio::sync::watch::Sender::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .route("/token", axum::routing::get(token))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
                let _ = stream.set_nodelay(true);
            });
            axum::serve(listener, app).await.unwrap();
        });
        TokenIssuer {
            realm: format!("http://127.0.0.1:{port}/token"),
            service: service.to_string(),
            root_bundle_pem: ca_cert.pem(),
            issued,
            served,
            state,
            _server: server,
        }
    }

    /// A token for `scope` signed like the served ones (for seeding with push access).
    pub fn mint(&self, subject: &str, scope: &str) -> String {
        self.state.sign(subject, &[scope.to_string()])
    }

    /// Holds every answer for `scope` (`repository:NAME:pull`) until the returned guard is dropped.
    pub fn hold(&self, scope: &str) -> Hold {
        let (release, released) = tokio::sync::watch::channel(());
        self.state
            .holds
            .lock()
            .unwrap()
            .insert(scope.to_string(), released);
        Hold {
            state: self.state.clone(),
            scope: scope.to_string(),
            _release: release,
        }
    }

    /// Token requests received so far for `scope`, answered or held.
    pub fn requests_for(&self, scope: &str) -> usize {
        self.state
            .requests
            .borrow()
            .get(scope)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until at least `count` requests for `scope` have arrived.
    pub async fn wait_for_requests(&self, scope: &str, count: usize) {
        self.state
            .requests
            .subscribe()
            .wait_for(|requests| requests.get(scope).copied().unwrap_or(0) >= count)
            .await
            .unwrap();
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self._server.abort();
    }
}

impl IssuerState {
    fn sign(&self, subject: &str, scopes: &[String]) -> String {
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|scope| {
                // `repository:name:actions`; a name may hold `:` (host:port), so split on the last one.
                let (kind_and_name, actions) = scope.rsplit_once(':')?;
                let (kind, name) = kind_and_name.split_once(':')?;
                Some(serde_json::json!({
                    "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": subject,
            // distribution 2.8 accepts only a string here, never an array.
            "aud": self.service,
            "exp": now + self.ttl_seconds,
            "nbf": now - 1,
            "iat": now,
            "jti": format!("{now}-{}", self.issued.load(Ordering::Relaxed)),
            "access": access,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.x5c = Some(self.chain.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

async fn token(
    State(state): State<Arc<IssuerState>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let service = query
        .iter()
        .find(|(key, _)| key == "service")
        .map(|(_, value)| value.as_str());
    if service != Some(state.service.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown service").into_response();
    }
    let scopes: Vec<String> = query
        .iter()
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.clone())
        .collect();
    state.requests.send_modify(|requests| {
        for scope in &scopes {
            *requests.entry(scope.clone()).or_default() += 1;
        }
    });
    let held: Vec<_> = {
        let holds = state.holds.lock().unwrap();
        scopes
            .iter()
            .filter_map(|scope| holds.get(scope).cloned())
            .collect()
    };
    for mut hold in held {
        // Resolves (with an error) when the `Hold` is dropped: its sender goes away.
        let _ = hold.changed().await;
    }
    let subject = match basic_credentials(&headers) {
        None => None,
        Some((user, password)) if state.users.get(&user) == Some(&password) => Some(user),
        Some(_) => return (StatusCode::UNAUTHORIZED, "invalid credentials").into_response(),
    };
    // Anonymous callers get a valid token with no access, as real issuers do.
    let token = match &subject {
        Some(subject) => state.sign(subject, &scopes),
        None => state.sign("", &[]),
    };
    state.issued.fetch_add(1, Ordering::Relaxed);
    state.served.lock().unwrap().push(token.clone());
    axum::Json(serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": state.ttl_seconds,
    }))
    .into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}
