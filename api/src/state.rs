//! Shared application state, handed to handlers through axum's `State`.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;

use crate::config::ApiConfig;
use crate::hot_cache::HotCache;
use crate::request_ids::RequestIds;
use crate::request_recorder::RequestRecorder;
use crate::token_issuer::TokenIssuer;
use crate::token_reader::TokenReader;
use crate::tokens::TokenSigner;
use crate::waiters::Waiters;

/// A cheap handle (one reference count) on the [`Services`]: axum clones the state for every
/// request and extractor.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub db: PgPool,
    /// Idempotent producer (acks=all) for request topics.
    pub producer: FutureProducer,
    pub config: Arc<ApiConfig>,
    pub tokens: TokenSigner,
    /// Issues and verifies the ids of unrecorded submissions.
    pub request_ids: RequestIds,
    /// Long-poll waiters, woken by the event listener.
    pub waiters: Waiters,
    /// Renders the process's metrics at `/metrics`.
    pub metrics: PrometheusHandle,
    /// Admitted tokens and seat prices, with bounded staleness.
    pub cache: HotCache,
    /// Records submissions in group commits.
    pub recorder: RequestRecorder,
    /// Issues queue tokens in group commits.
    pub token_issuer: TokenIssuer,
    /// Reads token rows, concurrent reads coalesced.
    pub token_reader: TokenReader,
}

impl AppState {
    /// Must be called on a Tokio runtime: it starts the request recorder's task.
    pub fn new(config: ApiConfig, db: PgPool, producer: FutureProducer) -> Self {
        let tokens = TokenSigner::new(config.token_secret.clone());
        let request_ids = RequestIds::new(&config.token_secret);
        let cache = HotCache::new(config.token_cache_ttl);
        Self(Arc::new(Services {
            recorder: RequestRecorder::spawn(db.clone()),
            token_reader: TokenReader::spawn(db.clone()),
            token_issuer: TokenIssuer::spawn(db.clone(), config.queue.clone()),
            db,
            producer,
            config: Arc::new(config),
            tokens,
            request_ids,
            waiters: Waiters::default(),
            metrics: seatline_shared::metrics::install(),
            cache,
        }))
    }
}
