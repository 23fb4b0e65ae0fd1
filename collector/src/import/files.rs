//! What every import shares: the error that names file, line and column ([`ImportError`]),
//! reading a file as UTF-8, and CSV reading with RFC 4180 quoting checked first — so contracts
//! and assets report the same problems in the same words.

use std::fmt;
use std::path::Path;

/// Problems beyond this are summarised: each one may cost a re-parse to locate, and nobody
/// reads the 101st line of a wall of errors.
pub(crate) const MAX_REPORTED: usize = 100;

/// A contract, asset, advisory or KEV file that cannot be imported, with the place to fix it.
///
/// Displays as `file:line:column: contract "ID": what is wrong`, one line per problem, the form
/// editors and terminals jump to. Imports are all-or-nothing, so one error means nothing was
/// imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(self))]
pub struct ImportError {
    /// The file as given on the command line.
    pub file: String,
    /// 1-based line, when the problem has a place.
    pub line: Option<u32>,
    /// 1-based column, when known (YAML and JSON; CSV messages name the column header instead).
    pub column: Option<u32>,
    /// The contract or asset concerned, when known.
    pub record: Option<Record>,
    /// What is wrong, in plain words.
    pub message: String,
    /// Further problems found in the same pass, in file order: validation reports them all, so
    /// a 300-row export is not fixed one re-run per typo.
    pub more: Vec<ImportError>,
}

/// The record an [`ImportError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A contract, by id.
    Contract(String),
    /// A CMMS asset, by tag.
    Asset(String),
    /// A security advisory, by its tracking id.
    Advisory(String),
    /// A KEV catalog entry, by CVE id.
    Kev(String),
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Contract(id) => write!(f, "contract {id:?}"),
            Record::Asset(tag) => write!(f, "asset {tag:?}"),
            Record::Advisory(id) => write!(f, "advisory {id:?}"),
            Record::Kev(cve) => write!(f, "KEV entry {cve:?}"),
        }
    }
}

fn render(e: &ImportError) -> String {
    let one = |e: &ImportError| {
        let mut s = e.file.clone();
        if let Some(line) = e.line {
            s.push_str(&format!(":{line}"));
            if let Some(column) = e.column {
                s.push_str(&format!(":{column}"));
            }
        }
        if let Some(record) = &e.record {
            s.push_str(&format!(": {record}"));
        }
        format!("{s}: {}", e.message)
    };
    std::iter::once(e)
        .chain(&e.more)
        .map(one)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ImportError {
    pub(crate) fn new(file: &str, message: impl Into<String>) -> ImportError {
        ImportError {
            file: file.to_owned(),
            line: None,
            column: None,
            record: None,
            message: message.into(),
            more: Vec::new(),
        }
    }

    pub(crate) fn at(mut self, line: Option<usize>, column: Option<usize>) -> ImportError {
        // u32 keeps the error small (it travels in every `Result`); no file has 4G lines.
        let narrow = |n: Option<usize>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        self.line = narrow(line);
        // serde_json says column 0 before the first character of a line.
        self.column = narrow(column.map(|c| c.max(1))).filter(|_| line.is_some());
        self
    }

    pub(crate) fn about(mut self, record: Option<Record>) -> ImportError {
        self.record = record;
        self
    }

    /// This problem and the further ones, in file order.
    pub fn problems(&self) -> impl Iterator<Item = &ImportError> {
        std::iter::once(self).chain(&self.more)
    }

    /// Folds a pass's problems into one error (first in file order, the rest in `more`);
    /// `total` counts problems the caller did not even locate, so the summary is honest.
    pub(crate) fn collect(mut errors: Vec<ImportError>, total: usize) -> Option<ImportError> {
        errors.sort_by_key(|e| (e.line.unwrap_or(0), e.column.unwrap_or(0)));
        errors.truncate(MAX_REPORTED);
        let hidden = total.saturating_sub(errors.len());
        let mut errors = errors.into_iter();
        let mut first = errors.next()?;
        first.more = errors.collect();
        if hidden > 0 {
            let note = format!("{hidden} more problems not shown");
            first.more.push(ImportError::new(&first.file, note));
        }
        Some(first)
    }
}

/// Reads a whole file as UTF-8; a spreadsheet saved in a legacy code page is the usual
/// culprit, so the error says where the first bad byte is and how to re-export.
pub(crate) fn read_text(path: &Path, file: &str) -> Result<String, ImportError> {
    let bytes =
        std::fs::read(path).map_err(|e| ImportError::new(file, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e
            .as_bytes()
            .iter()
            .take(valid)
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ImportError::new(
            file,
            "not UTF-8 text (re-export or save it as UTF-8, e.g. \"CSV UTF-8\" in Excel)",
        )
        .at(Some(line), None)
    })
}

/// A CSV reader for `text`, delimited by `;` when the header line has more `;` than `,`:
/// spreadsheets in locales with a decimal comma export that way.
///
/// The text is first checked for RFC 4180 quoting ([`csv_quote_problem`]): the `csv` crate
/// reads an unterminated quote as running to the end of the file and a stray quote as a
/// literal, so a file damaged that way would import with rows silently merged into one cell.
pub(crate) fn csv_reader<'t>(
    text: &'t str,
    file: &str,
) -> Result<csv::Reader<&'t [u8]>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let delimiter = if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    };
    if let Some((line, column, message)) = csv_quote_problem(text, delimiter) {
        return Err(ImportError::new(file, message).at(Some(line), Some(column)));
    }
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes()))
}

/// The first place where `text` breaks RFC 4180 quoting, as (line, column, what is wrong):
/// a quote that is never closed (reported where it opened), a quote inside an unquoted field,
/// or text between a closing quote and the end of its field. One pass over the bytes, so a
/// hostile file costs linear time; lines count `\n`, `\r\n` and a lone `\r` as line breaks,
/// columns count characters from 1.
pub(crate) fn csv_quote_problem(text: &str, delimiter: u8) -> Option<(usize, usize, String)> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        /// At the start of a field: a quote here opens a quoted field.
        FieldStart,
        /// Inside an unquoted field.
        Unquoted,
        /// Inside a quoted field.
        Quoted,
        /// Just after a quote inside a quoted field: closing, or the first of a doubled quote.
        QuoteInQuoted,
    }
    let bytes = text.as_bytes();
    let (mut line, mut column) = (1usize, 0usize);
    let mut opened = (1usize, 1usize);
    let mut state = State::FieldStart;
    for (i, &b) in bytes.iter().enumerate() {
        // UTF-8 continuation bytes do not start a character.
        if b & 0xC0 != 0x80 {
            column += 1;
        }
        let ends_field = b == delimiter || b == b'\n' || b == b'\r';
        state =
            match (state, b) {
                (State::FieldStart, b'"') => {
                    opened = (line, column);
                    State::Quoted
                }
                (State::Unquoted, b'"') => {
                    return Some((
                        line,
                        column,
                        "stray quote in an unquoted field (a field containing \" must be quoted \
                     as a whole, with each \" inside it doubled: \"24\"\" monitor\")"
                            .into(),
                    ))
                }
                (State::FieldStart | State::Unquoted, _) if ends_field => State::FieldStart,
                (State::FieldStart | State::Unquoted, _) => State::Unquoted,
                (State::Quoted, b'"') => State::QuoteInQuoted,
                (State::Quoted, _) => State::Quoted,
                (State::QuoteInQuoted, b'"') => State::Quoted,
                (State::QuoteInQuoted, _) if ends_field => State::FieldStart,
                (State::QuoteInQuoted, _) => return Some((
                    line,
                    column,
                    "text after the closing quote of a quoted field (quote the whole field and \
                     double each \" inside it: \"\"\"CT\"\" Gen2\")"
                        .into(),
                )),
            };
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            line += 1;
            column = 0;
        }
    }
    (state == State::Quoted).then(|| {
        (
            opened.0,
            opened.1,
            "unterminated quote: the quoted field opened here is never closed, so the rest of \
             the file would be read into it (end the field with a \" and write each \" inside it as \"\")"
                .into(),
        )
    })
}

/// A `csv` crate error as an [`ImportError`] at its line.
pub(crate) fn csv_error(file: &str, e: &csv::Error) -> ImportError {
    let line = e.position().map(|p| p.line() as usize);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("row has {len} fields but the header has {expected_len}"),
        _ => e.to_string(),
    };
    ImportError::new(file, message).at(line, None)
}
