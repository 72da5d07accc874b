//! Library error type. The CLI wraps these in `anyhow` with context.

use std::path::PathBuf;

/// Every failure the vocmine library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input or a configuration file is malformed in a way that stops the whole run.
    #[error("{path}: {message}")]
    Input {
        /// The file involved.
        path: PathBuf,
        /// What is wrong and, where possible, what to do about it.
        message: String,
    },
    /// The model folder is missing a file or holds inconsistent files.
    #[error("model {path}: {message}")]
    Model {
        /// The model folder or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor operation failed inside candle.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// The tokenizer failed.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// JSON (de)serialisation failed.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// The search index could not be opened, read or written.
    #[error("index {0}")]
    Index(String),
    /// A search query or its parameters are malformed.
    #[error("{0}")]
    Query(String),
    /// A caller passed arguments that cannot work together.
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An input-format error for `path`.
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A model-folder error for `path`.
    pub fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Model {
            path: path.into(),
            message: message.into(),
        }
    }
}
