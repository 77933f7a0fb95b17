//! Test support (feature `testing`): drives the real router (`tower::ServiceExt::oneshot`) over
//! a per-test PostgreSQL database and the real local Kafka broker with random topic names.

use crate::config::ApiConfig;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use seatline_shared::config::{DatabaseConfig, KafkaConfig};
use seatline_shared::testing;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

pub const TOKEN_SECRET: &str = "test-secret-0123456789abcdef0123456789";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Clone)]
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub pool: PgPool,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an RFC 7807 answer with the given status.
    pub fn assert_problem(&self, status: StatusCode) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        for field in ["type", "title", "status", "detail"] {
            assert!(
                self.body.get(field).is_some(),
                "problem lacks {field}: {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status.as_u16());
    }
}

pub fn config_with(pool_kafka: KafkaConfig, tweak: impl FnOnce(&mut ApiConfig)) -> ApiConfig {
    let mut config = ApiConfig::for_services(
        DatabaseConfig::new("postgres://unused"),
        pool_kafka,
        TOKEN_SECRET,
    );
    config.admin_token = Some(secrecy::SecretString::from(ADMIN_TOKEN.to_owned()));
    tweak(&mut config);
    config
}

impl TestApp {
    /// An app on this test's database and a fresh set of topics on the local broker.
    pub async fn new(pool: PgPool) -> Self {
        Self::with_config(pool, |_| {}).await
    }

    pub async fn with_config(pool: PgPool, tweak: impl FnOnce(&mut ApiConfig)) -> Self {
        let config = config_with(testing::kafka_config(), tweak);
        Self::from_parts(config, pool.clone(), pool)
    }

    /// An app on the given Kafka settings (shared with workers under test).
    pub fn with_kafka(pool: PgPool, kafka: KafkaConfig) -> Self {
        Self::from_parts(config_with(kafka, |_| {}), pool.clone(), pool)
    }

    /// An app whose state uses `state_pool` (perhaps unreachable) while the test inspects
    /// `pool`.
    pub fn from_parts(config: ApiConfig, state_pool: PgPool, pool: PgPool) -> Self {
        let producer = seatline_shared::kafka::producer(&config.kafka).unwrap();
        let state = AppState::new(config, state_pool, producer);
        Self {
            router: crate::http::router(state.clone()),
            state,
            pool,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(json) => builder
                .header("content-type", "application/json")
                .body(Body::from(json.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    /// Submits a reservation of `seat` on `date` with `token`, as a client would.
    pub async fn reserve(&self, token: &str, date: i64, seat: i32) -> Reply {
        self.call(
            Method::POST,
            "/reservation",
            Some(token),
            Some(serde_json::json!({"concertDateId": date, "seatNo": seat})),
        )
        .await
    }

    /// Serves the app over a real socket on loopback ([`crate::serve`]) until
    /// [`Served::begin_shutdown`].
    pub async fn serve_on_loopback(&self) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::serve(listener, self.state.clone(), async {
            let _ = stopped.await;
        }));
        Served {
            addr,
            stop: Some(stop),
            server,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Issues a token for a new user and returns (user id, token).
    pub async fn new_user(&self) -> (Uuid, String) {
        let user = Uuid::new_v4();
        let reply = self
            .call(
                Method::POST,
                "/client/token",
                None,
                Some(serde_json::json!({ "userId": user })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        (user, reply.body["token"].as_str().unwrap().to_owned())
    }

    /// Issues a token for a new user and admits it at once.
    pub async fn active_user(&self) -> (Uuid, String) {
        let (user, token) = self.new_user().await;
        sqlx::query(
            "UPDATE queue_tokens SET status = 'ACTIVE', activated_at = now(),
                    expires_at = now() + interval '10 minutes'
             WHERE user_id = $1 AND status = 'WAITING'",
        )
        .bind(user)
        .execute(&self.pool)
        .await
        .unwrap();
        // Only the admitter makes tokens ACTIVE, and its upper bound on them counts on that.
        sqlx::query("UPDATE queue_state SET active_bound = NULL")
            .execute(&self.pool)
            .await
            .unwrap();
        (user, token)
    }
}

/// The app served over TCP by [`TestApp::serve_on_loopback`].
pub struct Served {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    /// Completes the server's shutdown future: it stops accepting and drains.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Whether `serve` has returned.
    pub fn has_returned(&self) -> bool {
        self.server.is_finished()
    }

    /// Asserts that `serve` returns, without error, within 5 s.
    pub async fn assert_returns(self) {
        let finished = tokio::time::timeout(std::time::Duration::from_secs(5), self.server).await;
        assert!(
            matches!(finished, Ok(Ok(Ok(())))),
            "the server did not stop: {finished:?}"
        );
    }
}

/// Asserts that the server closes a raw connection, sending nothing more, within 5 s.
pub async fn assert_closed_by_server(connection: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;

    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        connection.read_to_end(&mut rest),
    )
    .await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?}");
}
