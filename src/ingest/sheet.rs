//! Spreadsheets (`.xlsx`, `.xlsm`, `.xls`, `.ods`) read with calamine.
//!
//! One worksheet (the first, or the one named with `--sheet`) is read; its first non-empty row
//! is the header, mapped to comment fields as a CSV header is. A record's `line` is the
//! spreadsheet's row number (1-based, as Excel shows it). Cells become text as Excel displays
//! them in the simplest form: whole numbers without `.0` (ids such as 10023 stay 10023), dates
//! as `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`, error cells as empty. The sheet is held in memory
//! while it is read (Excel's own limit is 1,048,576 rows).

use super::csv::{map_header, CsvIndex};
use crate::error::{Error, Result};
use calamine::{open_workbook_auto, Data, Reader as _};
use std::path::Path;

/// The rows of a sheet after its header: (row number, cells as UTF-8 bytes).
pub(super) type Rows = std::vec::IntoIter<(u64, Vec<Vec<u8>>)>;

/// Opens the sheet `sheet` (or the first) of the workbook at `path` and maps its header.
pub(super) fn open(
    path: &Path,
    sheet: Option<&str>,
    cols: &super::ColumnMap,
) -> Result<(Rows, CsvIndex)> {
    let mut wb = open_workbook_auto(path)
        .map_err(|e| Error::input(path, format!("cannot open the spreadsheet: {e}")))?;
    let names = wb.sheet_names();
    let name = match sheet {
        Some(s) => {
            if !names.iter().any(|n| n == s) {
                return Err(Error::input(
                    path,
                    format!("no sheet {s:?} (sheets: {})", names.join(", ")),
                ));
            }
            s.to_string()
        }
        None => names
            .first()
            .cloned()
            .ok_or_else(|| Error::input(path, "the workbook has no sheet"))?,
    };
    let range = wb
        .worksheet_range(&name)
        .map_err(|e| Error::input(path, format!("cannot read sheet {name:?}: {e}")))?;
    let first_row = u64::from(range.start().map_or(0, |(r, _)| r));
    let mut rows = range
        .rows()
        .enumerate()
        .map(|(i, r)| (first_row + i as u64 + 1, r));
    let (header_line, header) = loop {
        match rows.next() {
            None => {
                return Err(Error::input(
                    path,
                    format!("sheet {name:?} is empty: no header row"),
                ))
            }
            Some((ln, r)) if r.iter().any(|c| !matches!(c, Data::Empty)) => break (ln, r),
            Some(_) => {}
        }
    };
    let header_names: Vec<String> = header
        .iter()
        .map(|c| cell_text(c).trim().to_string())
        .collect();
    let idx = map_header(path, header_names, cols).map_err(|e| match e {
        Error::Input { path, message } => Error::Input {
            path,
            message: format!("sheet {name:?}, row {header_line}: {message}"),
        },
        e => e,
    })?;
    let width = header.len();
    let body: Vec<(u64, Vec<Vec<u8>>)> = rows
        .filter(|(_, r)| r.iter().any(|c| !matches!(c, Data::Empty)))
        .map(|(ln, r)| {
            let mut cells: Vec<Vec<u8>> = r.iter().map(|c| cell_text(c).into_bytes()).collect();
            cells.resize(width, Vec::new());
            (ln, cells)
        })
        .collect();
    Ok((body.into_iter(), idx))
}

/// A cell as text, in the simplest form Excel would display.
fn cell_text(c: &Data) -> String {
    match c {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) if d.is_datetime() => {
            let (y, mo, day, h, mi, s, _) = d.to_ymd_hms_milli();
            if (h, mi, s) == (0, 0, 0) {
                format!("{y:04}-{mo:02}-{day:02}")
            } else {
                format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}")
            }
        }
        Data::DateTime(d) => number_text(d.as_f64()),
    }
}

/// A number without a trailing `.0` when it is whole (and small enough to be exact).
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_excel_shows_them() {
        assert_eq!(number_text(10023.0), "10023");
        assert_eq!(number_text(4.5), "4.5");
        assert_eq!(number_text(-3.0), "-3");
        assert_eq!(cell_text(&Data::Error(calamine::CellErrorType::Div0)), "");
        let d = calamine::ExcelDateTime::new(45943.5, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&Data::DateTime(d)), "2025-10-13T12:00:00");
        let d = calamine::ExcelDateTime::new(45943.0, calamine::ExcelDateTimeType::DateTime, false);
        assert_eq!(cell_text(&Data::DateTime(d)), "2025-10-13");
    }
}
