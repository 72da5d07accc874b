//! The HTTP API over a search index (axum): `GET /search` with the CLI's filters as query
//! parameters, `GET /health`. Searches run on tokio's blocking pool, so concurrent requests
//! are served in parallel; the reader reloads shortly after every commit, so a running server
//! sees what a concurrent `vocmine index` adds.

use crate::index::query::{search, SearchRequest};
use crate::index::SearchIndex;
use crate::{Error, Result};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tantivy::IndexReader;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    index: Arc<SearchIndex>,
    reader: IndexReader,
}

impl AppState {
    /// Opens a reader on `index`.
    pub fn new(index: SearchIndex) -> Result<AppState> {
        let reader = index.reader()?;
        Ok(AppState {
            index: Arc::new(index),
            reader,
        })
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/search", get(search_handler))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint (use GET /search?q=... or GET /health)".into(),
            )
        })
        .with_state(state)
}

async fn health(State(st): State<AppState>) -> Response {
    let searcher = st.reader.searcher();
    Json(serde_json::json!({
        "status": "ok",
        "docs": searcher.num_docs(),
        "segments": searcher.segment_readers().len(),
    }))
    .into_response()
}

async fn search_handler(
    State(st): State<AppState>,
    params: std::result::Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let req = match SearchRequest::from_params(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let res = tokio::task::spawn_blocking(move || {
        let searcher = st.reader.searcher();
        search(&st.index, &searcher, &req)
    })
    .await;
    match res {
        Ok(Ok(r)) => Json(r).into_response(),
        Ok(Err(e @ Error::Query(_))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("search task failed: {e}"),
        ),
    }
}

/// Serves `index` on `addr` until Ctrl-C. Calls `on_ready` with the bound address (port 0
/// picks a free port).
pub fn serve(
    index: SearchIndex,
    addr: &str,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let state = AppState::new(index)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
        on_ready(local);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::Invalid(format!("server on {addr} failed: {e}")))
    })
}
