//! The input columns' flags (`score`, `status`, `eval`).

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use vocmine::ingest::{ColumnMap, Format, IngestConfig};

#[derive(Args)]
pub(crate) struct ColumnArgs {
    /// Input format [default: from the extension; .xlsx/.xls/.ods are spreadsheets]
    #[arg(long, value_parser = ["csv", "jsonl", "xlsx", "parquet"])]
    format: Option<String>,
    /// CSV delimiter, one character (e.g. ';' or 'tab') [default: tab for .tsv, else the one
    /// of , ; tab | found most often in the header line]
    #[arg(long)]
    delimiter: Option<String>,
    /// Text encoding of CSV/JSONL input: auto, utf-8, gb18030 (or gbk), big5, utf-16le, ...
    /// [default: auto: UTF-16 by its byte-order mark, UTF-8, else GB18030]
    #[arg(long)]
    encoding: Option<String>,
    /// Sheet of a spreadsheet input to read [default: the first]
    #[arg(long)]
    sheet: Option<String>,
    /// TOML file with a [columns] table mapping id/text/time/channel/rating/tier/product
    #[arg(long)]
    columns: Option<PathBuf>,
    /// Field holding the text
    #[arg(long)]
    text_col: Option<String>,
    /// Field holding the id (ids are derived from the text when absent)
    #[arg(long)]
    id_col: Option<String>,
    /// Field holding the time
    #[arg(long)]
    time_col: Option<String>,
    /// Field holding the channel
    #[arg(long)]
    channel_col: Option<String>,
    /// Field holding the rating
    #[arg(long)]
    rating_col: Option<String>,
    /// Field holding the customer tier
    #[arg(long)]
    tier_col: Option<String>,
    /// Field holding the product
    #[arg(long)]
    product_col: Option<String>,
}

impl ColumnArgs {
    /// The ingest settings the flags give.
    pub(crate) fn config(&self) -> Result<IngestConfig> {
        let mut cols = match &self.columns {
            Some(p) => ColumnMap::from_toml_file(p)?,
            None => ColumnMap::default(),
        };
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                *slot = v.clone();
            }
        };
        set(&mut cols.text, &self.text_col);
        set(&mut cols.id, &self.id_col);
        set(&mut cols.time, &self.time_col);
        set(&mut cols.channel, &self.channel_col);
        set(&mut cols.rating, &self.rating_col);
        set(&mut cols.tier, &self.tier_col);
        set(&mut cols.product, &self.product_col);
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some("tab" | "\\t") => Some(b'\t'),
            Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
            Some(d) => bail!("--delimiter must be one ASCII character or 'tab', not {d:?}"),
        };
        let format = match self.format.as_deref() {
            Some("csv") => Some(Format::Csv),
            Some("jsonl") => Some(Format::Jsonl),
            Some("xlsx") => Some(Format::Sheet),
            Some("parquet") => Some(Format::Parquet),
            _ => None,
        };
        Ok(IngestConfig {
            columns: cols,
            format,
            delimiter,
            encoding: self.encoding.clone(),
            sheet: self.sheet.clone(),
        })
    }
}
