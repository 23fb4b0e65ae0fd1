//! The small part of rusqlite's API that the store's files use, over a PostgreSQL connection.
//!
//! Why a shim rather than a second hand-written store: the PostgreSQL files are the SQLite files
//! with their dialect differences made explicit, and this layer lets them keep the same Rust
//! (transactions, `query_row`, `params!`, typed `row.get`) and, where the dialects agree after a
//! mechanical rewrite, the same SQL text. [`translate`] does that rewrite: `?N` placeholders to
//! `$N`, SQLite's two-argument `min`/`max` to `LEAST`/`GREATEST`, `INSERT OR IGNORE` to
//! `ON CONFLICT DO NOTHING`, `LIKE` (ASCII case-insensitive in SQLite) to `ILIKE`, and
//! `json_each(?)` to `json_array_elements_text`. What does not rewrite mechanically (the
//! schema, `INSERT OR REPLACE`, `last_insert_rowid`) is written out in the PostgreSQL file next
//! to its SQLite twin.
//!
//! Values are dynamically typed like SQLite's: a Rust integer binds to whichever integer, real,
//! boolean or text type PostgreSQL inferred for the parameter, and a column is read by its
//! declared type. That keeps the schema's `BIGINT`/`DOUBLE PRECISION`/`TEXT` mapping the only
//! thing the two backends must agree on.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Deref;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql as PgToSql, Type};

/// A driver-level failure of one statement.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL refused or the connection failed.
    #[error("{0}")]
    Pg(#[from] postgres::Error),
    /// `query_row` found no row.
    #[error("query returned no rows")]
    QueryReturnedNoRows,
    /// A value that does not convert to the Rust type asked for.
    #[error("column {column}: {detail}")]
    Conversion {
        /// Column index.
        column: usize,
        /// Why.
        detail: String,
    },
    /// No connection from the pool.
    #[error("connection pool: {0}")]
    Pool(String),
}

impl Error {
    /// Whether PostgreSQL asked for the transaction to be retried (serialization failure or
    /// deadlock): the caller runs it again from the start.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Pg(e) => e.code().is_some_and(|c| {
                *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            }),
            _ => false,
        }
    }
}

/// rusqlite's alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A dynamically typed value (SQLite's storage classes).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// rusqlite's `types` module, for the paths the store's files name.
pub mod types {
    pub use super::Value;
}

fn boxed(s: String) -> Box<dyn std::error::Error + Sync + Send> {
    s.into()
}

impl PgToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let text = |ty: &Type| {
            [
                Type::TEXT,
                Type::VARCHAR,
                Type::BPCHAR,
                Type::NAME,
                Type::UNKNOWN,
            ]
            .contains(ty)
        };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)
                    .map_err(|_| boxed(format!("{i} out of range for int4")))?
                    .to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)
                    .map_err(|_| boxed(format!("{i} out of range for int2")))?
                    .to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                ref t if text(t) => i.to_string().to_sql(&Type::TEXT, out),
                ref t => Err(boxed(format!("an integer does not bind to {t}"))),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                ref t if text(t) => f.to_string().to_sql(&Type::TEXT, out),
                ref t => Err(boxed(format!("a real does not bind to {t}"))),
            },
            Value::Text(s) => match *ty {
                ref t if text(t) => s.as_str().to_sql(&Type::TEXT, out),
                Type::JSON | Type::JSONB => {
                    // The JSON types' wire format: JSONB has a version byte, JSON is the text.
                    if *ty == Type::JSONB {
                        out.extend_from_slice(&[1]);
                    }
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                ref t => Err(boxed(format!("text does not bind to {t}"))),
            },
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_sql(ty, out)
    }
}

/// A Rust value that binds as a parameter.
pub trait ToSql {
    /// Its dynamic value.
    fn to_value(&self) -> Value;
}

macro_rules! int_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Value {
                // Saturating like a clamp: the store never binds integers above i64::MAX (the
                // ingest bounds cut counts there first).
                Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_sql!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

impl ToSql for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl ToSql for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToSql for f32 {
    fn to_value(&self) -> Value {
        Value::Real(f64::from(*self))
    }
}
impl ToSql for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToSql for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToSql for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToSql + ?Sized> ToSql for Box<T> {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToSql::to_value)
    }
}
impl ToSql for std::borrow::Cow<'_, str> {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

/// A statement's parameters.
pub trait Params {
    /// Their values, in order.
    fn values(self) -> Vec<Value>;
}

impl Params for &[&dyn ToSql] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl Params for [&dyn ToSql; 0] {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}
macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToSql::to_value).collect()
            }
        }
        impl<T: ToSql + ?Sized> Params for &[&T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(|v| v.to_value()).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
macro_rules! tuple_params {
    ($(($($t:ident $i:tt),*)),*) => {$(
        impl<$($t: ToSql),*> Params for ($($t,)*) {
            fn values(self) -> Vec<Value> {
                vec![$(self.$i.to_value()),*]
            }
        }
    )*};
}
tuple_params!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5)
);

/// rusqlite's `params_from_iter`.
#[derive(Debug)]
pub struct ParamsFromIter<I>(I);

/// Parameters from an iterator.
pub fn params_from_iter<I>(iter: I) -> ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    ParamsFromIter(iter)
}

impl<I> Params for ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    fn values(self) -> Vec<Value> {
        self.0.into_iter().map(|v| v.to_value()).collect()
    }
}

/// rusqlite's `params!`.
#[macro_export]
#[doc(hidden)]
macro_rules! pg_params {
    () => {
        &[] as &[&dyn $crate::store::postgres::sql::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::postgres::sql::ToSql),+] as &[&dyn $crate::store::postgres::sql::ToSql]
    };
}
pub use crate::pg_params as params;

/// A Rust type a column reads into.
pub trait FromSql: Sized {
    /// From the column's value.
    fn column_result(v: Value) -> std::result::Result<Self, String>;
}

macro_rules! int_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn column_result(v: Value) -> std::result::Result<Self, String> {
                match v {
                    Value::Integer(i) => <$t>::try_from(i).map_err(|_| format!("{i} out of range")),
                    other => Err(format!("expected an integer, found {}", kind(&other))),
                }
            }
        }
    )*};
}
int_from_sql!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

impl FromSql for bool {
    fn column_result(v: Value) -> std::result::Result<Self, String> {
        i64::column_result(v).map(|i| i != 0)
    }
}
impl FromSql for f64 {
    fn column_result(v: Value) -> std::result::Result<Self, String> {
        match v {
            Value::Real(f) => Ok(f),
            Value::Integer(i) => Ok(i as f64),
            other => Err(format!("expected a real, found {}", kind(&other))),
        }
    }
}
impl FromSql for String {
    fn column_result(v: Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s),
            other => Err(format!("expected text, found {}", kind(&other))),
        }
    }
}
impl FromSql for Vec<u8> {
    fn column_result(v: Value) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Err(format!("expected a blob, found {}", kind(&other))),
        }
    }
}
impl FromSql for Value {
    fn column_result(v: Value) -> std::result::Result<Self, String> {
        Ok(v)
    }
}
impl<T: FromSql> FromSql for Option<T> {
    fn column_result(v: Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::column_result(v).map(Some),
        }
    }
}

/// Reads a stored name as one of `all` (what the SQLite backend's `from_stored` does).
pub(super) fn stored_name<T: Copy>(
    v: Value,
    all: &[T],
    name: fn(T) -> &'static str,
) -> std::result::Result<T, String> {
    let s = String::column_result(v)?;
    all.iter()
        .copied()
        .find(|t| name(*t) == s)
        .ok_or_else(|| format!("unknown stored name {s:?}"))
}

impl FromSql for crate::store::ServiceDirection {
    fn column_result(v: Value) -> std::result::Result<Self, String> {
        stored_name(v, Self::ALL, Self::as_str)
    }
}
impl FromSql for crate::store::Transport {
    fn column_result(v: Value) -> std::result::Result<Self, String> {
        stored_name(v, Self::ALL, Self::as_str)
    }
}

/// A column index (rusqlite's `RowIndex`; names are not used by the store).
pub trait RowIndex {
    /// The index.
    fn index(&self) -> usize;
}
impl RowIndex for usize {
    fn index(&self) -> usize {
        *self
    }
}
impl RowIndex for i32 {
    fn index(&self) -> usize {
        usize::try_from(*self).unwrap_or(usize::MAX)
    }
}

/// One result row.
#[derive(Debug)]
pub struct Row<'a>(&'a postgres::Row);

impl Row<'_> {
    /// Column `idx` as `T`.
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let i = idx.index();
        let v = self.value(i)?;
        T::column_result(v).map_err(|detail| Error::Conversion { column: i, detail })
    }

    /// Column `idx` as a dynamic value.
    pub fn value(&self, i: usize) -> Result<Value> {
        let Some(col) = self.0.columns().get(i) else {
            return Err(Error::Conversion {
                column: i,
                detail: "no such column".into(),
            });
        };
        let r = self.0;
        let v = match *col.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Integer(v.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => r
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        Ok(v.unwrap_or(Value::Null))
    }
}

/// The rows of a query, read one by one (rusqlite's `Rows`).
#[derive(Debug)]
pub struct Rows {
    rows: std::vec::IntoIter<postgres::Row>,
    current: Option<postgres::Row>,
}

impl Rows {
    /// The next row.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        self.current = self.rows.next();
        Ok(self.current.as_ref().map(Row))
    }
}

/// rusqlite's `OptionalExtension`.
pub trait OptionalExtension<T> {
    /// `Ok(None)` for no row.
    fn optional(self) -> Result<Option<T>>;
}
impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Runs a blocking call of the `postgres` client where it may block: the client drives its
/// own small runtime, which tokio refuses to start on a thread that is running async tasks.
/// Outside a runtime (the CLI, the API's blocking threads) it runs in place; inside one (the
/// collector's ingest loop) on a scoped thread of its own, which is outside it. (`block_in_place`
/// is not enough: it does not leave the runtime when called from `Runtime::block_on`'s thread.)
/// The store wraps each whole method, so a batch costs one thread, not one per statement.
pub(super) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A pooled PostgreSQL session with its prepared statements.
pub struct Session {
    client: Option<postgres::Client>,
    /// Prepared statements by their SQLite text, with which bound value each `$n` takes.
    statements: HashMap<String, (postgres::Statement, Vec<usize>)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("statements", &self.statements.len())
            .finish()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the client blocks on its runtime: the same rule as every call.
        if let Some(c) = self.client.take() {
            off_runtime(move || drop(c));
        }
    }
}

/// Prepared statements kept per session (as SQLite's statement cache): more than the store uses.
const STATEMENT_CACHE: usize = 256;

impl Session {
    pub(super) fn new(client: postgres::Client) -> Session {
        Session {
            client: Some(client),
            statements: HashMap::new(),
        }
    }

    /// The client (present until the session is dropped).
    fn client(&mut self) -> Result<&mut postgres::Client> {
        self.client
            .as_mut()
            .ok_or_else(|| Error::Pool("session closed".into()))
    }

    /// Whether the connection is gone (the pool then discards the session).
    pub(super) fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(|c| c.is_closed())
    }

    /// A round trip, to check the session before the pool hands it out.
    pub(super) fn ping(&mut self) -> Result<()> {
        let c = self.client()?;
        off_runtime(|| c.simple_query("").map(|_| ()))?;
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        let c = self.client()?;
        Ok(off_runtime(|| c.batch_execute(sql))?)
    }

    fn statement(&mut self, sql: &str) -> Result<(postgres::Statement, Vec<usize>)> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let (text, used) = translate_with_params(sql);
        let c = self.client()?;
        let s = (off_runtime(|| c.prepare(&text))?, used);
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// The values the statement's `$1..$n` take (SQLite ignores a bound value the text does
    /// not name; PostgreSQL cannot type it, so it is not sent).
    fn bind<'v>(values: &'v [Value], used: &[usize]) -> Vec<&'v (dyn PgToSql + Sync)> {
        const NULL: Value = Value::Null;
        used.iter()
            .map(|&i| values.get(i).unwrap_or(&NULL) as &(dyn PgToSql + Sync))
            .collect()
    }

    fn run(&mut self, sql: &str, values: &[Value]) -> Result<Vec<postgres::Row>> {
        let (st, used) = self.statement(sql)?;
        let c = self.client()?;
        Ok(off_runtime(|| c.query(&st, &Self::bind(values, &used)))?)
    }

    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64> {
        let (st, used) = self.statement(sql)?;
        let c = self.client()?;
        Ok(off_runtime(|| c.execute(&st, &Self::bind(values, &used)))?)
    }

    /// A statement in PostgreSQL's own dialect, prepared once per session like the others (kept
    /// in the same cache under a key SQLite text never has).
    fn native_statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        let key = format!("\0native\0{sql}");
        if let Some((s, _)) = self.statements.get(&key) {
            return Ok(s.clone());
        }
        let c = self.client()?;
        let s = off_runtime(|| c.prepare(sql))?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(key, (s.clone(), Vec::new()));
        Ok(s)
    }

    fn run_native(&mut self, sql: &str, params: &[NativeParam<'_>]) -> Result<Vec<postgres::Row>> {
        let st = self.native_statement(sql)?;
        let c = self.client()?;
        Ok(off_runtime(|| c.query(&st, params))?)
    }

    fn execute_native(&mut self, sql: &str, params: &[NativeParam<'_>]) -> Result<u64> {
        let st = self.native_statement(sql)?;
        let c = self.client()?;
        Ok(off_runtime(|| c.execute(&st, params))?)
    }
}

/// A parameter bound as the driver's own type: what the rusqlite-shaped [`Value`] cannot say,
/// such as the arrays a many-row `INSERT … SELECT * FROM unnest($1::bigint[], …)` takes (one
/// round trip for a whole table's rows of a transaction).
pub type NativeParam<'a> = &'a (dyn PgToSql + Sync);

/// How a transaction starts (rusqlite's `TransactionBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionBehavior {
    /// A reader: no lock.
    Deferred,
    /// A writer: takes the store's write lock first (see [`WRITE_LOCK`]).
    Immediate,
}

/// The advisory lock every writing transaction takes first: PostgreSQL's counterpart of
/// SQLite's `BEGIN IMMEDIATE`. Writers across all collectors on one database run one at a
/// time, so identity resolution (read the identities, then insert or merge) cannot race: two
/// collectors resolving the same device at once end with one device and one merge, and no
/// upsert's read-modify-write is lost. Readers are not blocked (MVCC). A transaction-scoped lock
/// is released by COMMIT or ROLLBACK, including when the holder's connection dies.
pub const WRITE_LOCK: i64 = 0x7761_7264_0001; // "ward" 1

/// A connection: one pooled session, used through `&self` like rusqlite's.
pub struct Connection {
    session: RefCell<Pooled>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

/// A session checked out of the pool.
pub type Pooled = r2d2::PooledConnection<super::Manager>;

impl Connection {
    /// Wraps a session.
    pub fn new(session: Pooled) -> Self {
        Connection {
            session: RefCell::new(session),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let mut s = self.session.borrow_mut();
        f(&mut s)
    }

    /// Runs statements without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        self.with(|s| s.batch(sql))
    }

    /// Runs one statement; the rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        let v = params.values();
        self.with(|s| s.execute(sql, &v))
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The first row of a query, mapped.
    pub fn query_row<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        let v = params.values();
        let rows = self.with(|s| s.run(sql, &v))?;
        match rows.first() {
            Some(r) => f(&Row(r)),
            None => Err(Error::QueryReturnedNoRows),
        }
    }

    /// A statement to run (rusqlite's prepared statement; here it is prepared on first use and
    /// kept per session).
    pub fn prepare_cached<'c>(&'c self, sql: &str) -> Result<Statement<'c>> {
        Ok(Statement {
            conn: self,
            sql: sql.to_string(),
        })
    }

    /// Same as [`Connection::prepare_cached`].
    pub fn prepare<'c>(&'c self, sql: &str) -> Result<Statement<'c>> {
        self.prepare_cached(sql)
    }

    /// Runs a statement written in PostgreSQL's dialect (no [`translate`]) with parameters of
    /// the driver's own types; the rows it returns.
    pub fn query_native(
        &self,
        sql: &str,
        params: &[NativeParam<'_>],
    ) -> Result<Vec<postgres::Row>> {
        self.with(|s| s.run_native(sql, params))
    }

    /// [`Connection::query_native`] for a statement without rows; the rows it changed.
    pub fn execute_native(&self, sql: &str, params: &[NativeParam<'_>]) -> Result<u64> {
        self.with(|s| s.execute_native(sql, params))
    }

    /// Starts a transaction; `Immediate` takes the write lock.
    pub fn transaction_with_behavior(
        &self,
        behavior: TransactionBehavior,
    ) -> Result<Transaction<'_>> {
        self.execute_batch("BEGIN ISOLATION LEVEL READ COMMITTED")?;
        let tx = Transaction {
            conn: self,
            done: Cell::new(false),
        };
        if behavior == TransactionBehavior::Immediate {
            self.query_row("SELECT pg_advisory_xact_lock(?1)", [WRITE_LOCK], |_| Ok(()))?;
        }
        Ok(tx)
    }

    /// A read-only transaction on one snapshot (several reads that must agree).
    pub fn transaction_snapshot(&self) -> Result<Transaction<'_>> {
        self.execute_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        Ok(Transaction {
            conn: self,
            done: Cell::new(false),
        })
    }

    /// rusqlite's transaction through `&self`: here a read-only snapshot, which is what the
    /// store's files use it for (several reads that must agree).
    pub fn unchecked_transaction(&self) -> Result<Transaction<'_>> {
        self.transaction_snapshot()
    }

    /// A reading transaction.
    pub fn transaction(&self) -> Result<Transaction<'_>> {
        self.transaction_with_behavior(TransactionBehavior::Deferred)
    }
}

/// A statement bound to its connection.
#[derive(Debug)]
pub struct Statement<'c> {
    conn: &'c Connection,
    sql: String,
}

impl Statement<'_> {
    /// Runs it; the rows changed.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        self.conn.execute(&self.sql, params)
    }

    /// The first row, mapped.
    pub fn query_row<T, P: Params>(
        &mut self,
        params: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.conn.query_row(&self.sql, params, f)
    }

    /// Every row, mapped.
    pub fn query_map<T, P: Params, F: FnMut(&Row<'_>) -> Result<T>>(
        &mut self,
        params: P,
        mut f: F,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let v = params.values();
        let rows = self.conn.with(|s| s.run(&self.sql, &v))?;
        let out: Vec<Result<T>> = rows.iter().map(|r| f(&Row(r))).collect();
        Ok(out.into_iter())
    }

    /// The rows, to read one by one.
    pub fn query<P: Params>(&mut self, params: P) -> Result<Rows> {
        let v = params.values();
        let rows = self.conn.with(|s| s.run(&self.sql, &v))?;
        Ok(Rows {
            rows: rows.into_iter(),
            current: None,
        })
    }

    /// Whether it returns a row.
    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        let v = params.values();
        Ok(!self.conn.with(|s| s.run(&self.sql, &v))?.is_empty())
    }
}

/// A transaction: rolled back when dropped uncommitted.
#[derive(Debug)]
pub struct Transaction<'c> {
    conn: &'c Connection,
    done: Cell<bool>,
}

impl Transaction<'_> {
    /// Commits.
    pub fn commit(self) -> Result<()> {
        self.done.set(true);
        self.conn.execute_batch("COMMIT")
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done.get() {
            // A failed rollback leaves the session broken; the pool then discards it.
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a PostgreSQL transaction failed");
            }
        }
    }
}

/// Rewrites SQLite's dialect where the PostgreSQL equivalent is mechanical (see the module
/// documentation). Statements are rewritten once per session, when first prepared.
pub fn translate(sql: &str) -> String {
    translate_with_params(sql).0
}

/// [`translate`], and for each `$n` of the result the index of the bound value it takes.
fn translate_with_params(sql: &str) -> (String, Vec<usize>) {
    let (placeholders, used) = rewrite_placeholders(sql);
    let mut s = rewrite_min_max(&placeholders);
    s = s.replace(" LIKE ", " ILIKE ");
    s = rewrite_json_each(&s);
    s = qualify_upsert(&s);
    if let Some(i) = s.find("INSERT OR IGNORE INTO") {
        s.replace_range(i..i + "INSERT OR IGNORE INTO".len(), "INSERT INTO");
        let end = s.trim_end().trim_end_matches(';').len();
        s.truncate(end);
        s.push_str(" ON CONFLICT DO NOTHING");
    }
    (s, used)
}

/// `?N` → `$N`; a bare `?` takes the next number after the highest seen (SQLite's rule). The
/// numbers the text names are then made consecutive (`?2` alone becomes `$1`); returns the
/// text and, for each `$n`, the bound value's index.
fn rewrite_placeholders(sql: &str) -> (String, Vec<usize>) {
    let (text, mut named) = number_placeholders(sql);
    named.sort_unstable();
    named.dedup();
    if named.iter().enumerate().all(|(i, n)| *n as usize == i + 1) {
        let used = (0..named.len()).collect();
        return (text, used);
    }
    // Renumber: `$<old>` → `$<position among the named>`.
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
        }
        if c != '$' || in_string {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let old: u32 = digits.parse().unwrap_or(0);
        let new = named.iter().position(|n| *n == old).map_or(0, |p| p + 1);
        out.push('$');
        out.push_str(&new.to_string());
    }
    let used = named
        .iter()
        .map(|n| (*n as usize).saturating_sub(1))
        .collect();
    (out, used)
}

/// `?N`/`?` → `$N`, and the numbers named.
fn number_placeholders(sql: &str) -> (String, Vec<u32>) {
    let mut named = Vec::new();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut highest = 0u32;
    let mut in_string = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
        }
        if c != '?' || in_string {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let n = if digits.is_empty() {
            highest + 1
        } else {
            digits.parse().unwrap_or(u32::MAX)
        };
        highest = highest.max(n);
        named.push(n);
        out.push('$');
        out.push_str(&n.to_string());
    }
    (out, named)
}

/// `min(a, b)`/`max(a, b)` (SQLite's scalar forms) → `LEAST`/`GREATEST`; the one-argument
/// aggregates stay.
fn rewrite_min_max(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut i = 0;
    while i < sql.len() {
        let rest = &sql[i..];
        let lower: String = rest
            .chars()
            .take(4)
            .collect::<String>()
            .to_ascii_lowercase();
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && (lower == "min(" || lower == "max(") {
            let open = i + 3;
            let mut depth = 0i32;
            let mut comma = false;
            for (j, b) in bytes.iter().enumerate().skip(open) {
                match b {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            let _ = j;
                            break;
                        }
                    }
                    b',' if depth == 1 => comma = true,
                    _ => {}
                }
            }
            if comma {
                out.push_str(if lower == "min(" { "LEAST" } else { "GREATEST" });
            } else {
                out.push_str(&sql[i..i + 3]);
            }
            i += 3;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// In an upsert's `DO UPDATE SET …`, a bare column name means the existing row to SQLite and is
/// ambiguous to PostgreSQL (the row or `excluded`): qualify each inserted column with the table,
/// except the assignment targets (which PostgreSQL wants bare).
fn qualify_upsert(sql: &str) -> String {
    let Some(set) = sql.find("DO UPDATE SET") else {
        return sql.to_string();
    };
    let Some(ins) = sql.find("INSERT INTO ") else {
        return sql.to_string();
    };
    let after = &sql[ins + "INSERT INTO ".len()..];
    let table: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let (Some(open), Some(close)) = (after.find('('), after.find(')')) else {
        return sql.to_string();
    };
    let columns: Vec<&str> = after[open + 1..close].split(',').map(str::trim).collect();
    let head = &sql[..set + "DO UPDATE SET".len()];
    let tail = &sql[set + "DO UPDATE SET".len()..];
    let mut out = String::from(head);
    let mut depth = 0i32;
    let mut last_sig = ','; // the SET keyword counts as a list separator
    let mut in_string = false;
    let chars: Vec<char> = tail.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            in_string = c != '\'';
            i += 1;
            continue;
        }
        if c == '\'' {
            in_string = true;
            out.push(c);
            last_sig = c;
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let qualified = last_sig == '.';
            let target = depth == 0 && last_sig == ',';
            if !qualified && !target && columns.contains(&word.as_str()) {
                out.push_str(&table);
                out.push('.');
            }
            out.push_str(&word);
            last_sig = 'a';
            continue;
        }
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if !c.is_whitespace() {
            last_sig = c;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// `json_each($N)` (a JSON array parameter) → `json_array_elements_text($N::json)`; both
/// yield a column named `value`.
fn rewrite_json_each(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(i) = rest.find("json_each(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "json_each(".len()..];
        let Some(close) = after.find(')') else {
            out.push_str(&rest[i..]);
            return out;
        };
        out.push_str("json_array_elements_text(");
        out.push_str(&after[..close]);
        out.push_str("::json)");
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn translates_sqlite_dialect() {
        assert_eq!(
            translate("UPDATE d SET first_us = min(first_us, ?1), n = max(n) WHERE a = ? AND b = ?5 AND c = ?"),
            "UPDATE d SET first_us = LEAST(first_us, $1), n = max(n) WHERE a = $2 AND b = $3 AND c = $4"
        );
        assert_eq!(
            super::translate_with_params("DELETE FROM t WHERE a = ?2 OR b = ?2"),
            ("DELETE FROM t WHERE a = $1 OR b = $1".to_string(), vec![1])
        );
        assert_eq!(
            translate("INSERT OR IGNORE INTO t (a) VALUES (?1)"),
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            translate("SELECT x FROM t WHERE n LIKE ?1 AND c IN (SELECT value FROM json_each(?2)) AND s = '?'"),
            "SELECT x FROM t WHERE n ILIKE $1 AND c IN (SELECT value FROM json_array_elements_text($2::json)) AND s = '?'"
        );
        assert_eq!(
            translate(
                "INSERT INTO s (k, first_us, agent_id) VALUES (?1, ?2, ?3) ON CONFLICT (k) DO UPDATE SET
                 first_us = min(first_us, excluded.first_us),
                 agent_id = CASE WHEN excluded.first_us >= first_us THEN excluded.agent_id ELSE agent_id END
                 WHERE s.k IS NOT NULL"
            ),
            "INSERT INTO s (k, first_us, agent_id) VALUES ($1, $2, $3) ON CONFLICT (k) DO UPDATE SET
                 first_us = LEAST(s.first_us, excluded.first_us),
                 agent_id = CASE WHEN excluded.first_us >= s.first_us THEN excluded.agent_id ELSE s.agent_id END
                 WHERE s.k IS NOT NULL"
        );
        assert_eq!(
            translate("SELECT coalesce(max(a, coalesce(b, 0)), 0)"),
            "SELECT coalesce(GREATEST(a, coalesce(b, 0)), 0)"
        );
    }
}
