//! `GET /openapi.json`: the OpenAPI 3.1 description of every endpoint, written by hand (the
//! integration tests check each described path and method against the running server).

use serde_json::{json, Value};

/// The paths the server routes, with their methods (what the description must cover).
pub const ROUTES: &[(&str, &str)] = &[
    ("/score", "post"),
    ("/search", "get"),
    ("/health", "get"),
    ("/metrics", "get"),
    ("/openapi.json", "get"),
];

fn error_response(what: &str) -> Value {
    json!({
        "description": what,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The OpenAPI document.
pub fn spec() -> Value {
    let tag_param = |name: &str, what: &str| {
        json!({"name": name, "in": "query", "required": false,
               "description": format!("{what} filter: comma-separated values (any of them)"),
               "schema": {"type": "string"}})
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "vocmine",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Score customer comments (sentiment, intent, pain points) and search \
                            scored comments. Every endpoint but /health needs \
                            `Authorization: Bearer TOKEN` when the server has a token."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}}},
                "Comment": {
                    "type": "object", "required": ["text"],
                    "properties": {
                        "id": {"type": ["string", "integer"],
                               "description": "derived from the text when absent"},
                        "text": {"type": "string"},
                        "time": {"type": ["string", "number"]},
                        "channel": {"type": ["string", "number"]},
                        "rating": {"type": ["number", "string"],
                                   "description": "a number within 0..=100"},
                        "tier": {"type": ["string", "number"]},
                        "product": {"type": ["string", "number"]}
                    }
                },
                "Scored": {
                    "type": "object",
                    "description": "one line of scored.jsonl: the comment with personal data \
                                    masked, its language and one result per task",
                    "required": ["id", "text", "lang", "n_tokens", "text_hash", "model"],
                    "properties": {
                        "id": {"type": "string"}, "text": {"type": "string"},
                        "lang": {"type": "string"}, "masked": {"type": "array",
                                                              "items": {"type": "string"}},
                        "n_tokens": {"type": "integer"}, "text_hash": {"type": "string"},
                        "model": {"type": "string"},
                        "aspects": {
                            "type": "array",
                            "description": "with `--tasks ...,aspects`: each aspect found, \
                                            its opinion words, its polarity and its character \
                                            span [from, to) in `text`",
                            "items": {
                                "type": "object",
                                "required": ["aspect", "polarity", "confidence", "span"],
                                "properties": {
                                    "aspect": {"type": "string"},
                                    "opinion": {"type": ["string", "null"]},
                                    "polarity": {"enum": ["negative", "neutral", "positive"]},
                                    "confidence": {"type": "number"},
                                    "span": {"type": "array", "items": {"type": "integer"},
                                             "minItems": 2, "maxItems": 2},
                                    "category": {"type": "string",
                                                 "description": "from the model's aspect \
                                                                 category list"}
                                }
                            }
                        }
                    },
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"label": {"type": "string"},
                                       "confidence": {"type": "number"},
                                       "probs": {"type": "object"}}
                    }
                },
                "Reject": {
                    "type": "object", "required": ["file", "line", "reason"],
                    "properties": {
                        "id": {"type": ["string", "null"]},
                        "file": {"type": "string", "const": "request"},
                        "line": {"type": "integer",
                                 "description": "1-based position of the item in comments"},
                        "field": {"type": "string"},
                        "reason": {"type": "string"}
                    }
                }
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/score": {"post": {
                "summary": "Score comments; concurrent requests are batched on the encoder",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["comments"],
                    "properties": {"comments": {"type": "array",
                        "items": {"$ref": "#/components/schemas/Comment"}}}}}}},
                "responses": {
                    "200": {"description": "scored records and per-item rejects",
                        "content": {"application/json": {"schema": {
                            "type": "object", "required": ["model", "scored", "rejected"],
                            "properties": {
                                "model": {"type": "string"},
                                "scored": {"type": "array",
                                           "items": {"$ref": "#/components/schemas/Scored"}},
                                "rejected": {"type": "array",
                                             "items": {"$ref": "#/components/schemas/Reject"}}
                            }}}}},
                    "400": error_response("malformed request (the message names the field)"),
                    "401": error_response("missing or wrong bearer token"),
                    "413": error_response("body or batch too large"),
                    "429": error_response("too many requests in flight"),
                    "503": error_response("scoring queue full, or shutting down")
                }
            }},
            "/search": {"get": {
                "summary": "Search scored comments (hits, facets, date histogram)",
                "parameters": [
                    {"name": "q", "in": "query", "required": false, "schema": {"type": "string"},
                     "description": "words (all must match); `syntax=true` for the query syntax"},
                    {"name": "syntax", "in": "query", "required": false,
                     "schema": {"type": "boolean", "default": false},
                     "description": "read `q` as query syntax: \"a phrase\", -excluded, a OR b (invalid syntax is searched as its words)"},
                    tag_param("sentiment", "Sentiment"), tag_param("intent", "Intent"),
                    tag_param("pain_point", "Pain point"), tag_param("channel", "Channel"),
                    tag_param("tier", "Tier"), tag_param("product", "Product"),
                    tag_param("lang", "Language"), tag_param("topic", "Topic id"),
                    {"name": "since", "in": "query", "schema": {"type": "string"}},
                    {"name": "until", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 10000}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                    {"name": "sort", "in": "query",
                     "schema": {"enum": ["relevance", "newest", "severity"]}},
                    {"name": "boost", "in": "query", "schema": {"type": "number"}},
                    {"name": "interval_days", "in": "query", "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": {"description": "{total, hits, facets}"},
                    "400": error_response("bad parameter (the message names it)"),
                    "404": error_response("this server serves no index")
                }
            }},
            "/health": {"get": {
                "summary": "Liveness, model version and index size (no token needed)",
                "security": [],
                "responses": {"200": {"description": "{status, model, docs, segments}"}}
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text/plain; version=0.0.4",
                                      "content": {"text/plain": {}}}}
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1"}}
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described_and_nothing_else() {
        let spec = super::spec();
        let paths = spec["paths"].as_object().unwrap();
        assert_eq!(paths.len(), super::ROUTES.len());
        for (path, method) in super::ROUTES {
            assert!(
                paths[*path][*method]["responses"].is_object(),
                "{path} {method}"
            );
        }
    }
}
