//! `GET /search`: the CLI's search with its filters as query parameters, run on tokio's
//! blocking pool; the reader reloads shortly after every commit (the server's own, after
//! `POST /score`, or a concurrent `vocmine index`).

use super::{error, internal_error, AppState};
use crate::index::query::{search, SearchRequest};
use crate::Error;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub(super) async fn search_handler(
    State(st): State<AppState>,
    params: std::result::Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Some(idx) = st.search.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "this server serves no index (start it with `vocmine serve RUN`)".into(),
        );
    };
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
        let searcher = idx.reader.searcher();
        search(&idx.index, &searcher, &req)
    })
    .await;
    match res {
        Ok(Ok(r)) => Json(r).into_response(),
        Ok(Err(e @ Error::Query(_))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => internal_error("search", &e.to_string()),
        Err(e) => internal_error("search", &e.to_string()),
    }
}
