//! Column types that map onto both backends.
//!
//! - [`sql_types::Ts`] holds an instant in UTC: `timestamptz` on PostgreSQL; on SQLite a fixed-width
//!   RFC 3339 text `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so comparing the text compares the instants and
//!   `ORDER BY` / range filters behave as on PostgreSQL. Rust side: [`Timestamp`] (a newtype over
//!   `chrono::DateTime<Utc>`); rows can also load straight into `DateTime<Utc>`.
//! - [`sql_types::Json`] holds a JSON document: `jsonb` on PostgreSQL; on SQLite JSON text (the
//!   column carries `CHECK (json_valid(...))`). Diesel's own SQLite `Jsonb` writes a binary blob that
//!   the `sqlite3` shell and other tools cannot read, hence this type. Rust side: [`Json<T>`] for any
//!   serde type (`Json<serde_json::Value>` by default); rows can also load into `serde_json::Value`.
//!
//! Both backends keep microseconds, so [`Timestamp`] truncates to microseconds when made; the value
//! in memory then equals the value read back.
//!
//! Why newtypes: diesel's blanket `AsExpression` impl makes binding a foreign type
//! (`DateTime<Utc>`, `serde_json::Value`) to a SQL type of ours a coherence error.

use chrono::{DateTime, SubsecRound, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::io::Write;

/// SQL types of the shared schema (used by `schema.rs`).
pub mod sql_types {
    /// Instant in UTC: `timestamptz` on PostgreSQL, fixed-width RFC 3339 `TEXT` on SQLite.
    ///
    /// The PostgreSQL OIDs are the built-in ones (1184 / 1185), so no type lookup query is needed.
    #[derive(
        diesel::sql_types::SqlType, diesel::query_builder::QueryId, Debug, Clone, Copy, Default,
    )]
    #[diesel(postgres_type(oid = 1184, array_oid = 1185))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct Ts;

    /// JSON document: `jsonb` on PostgreSQL (OIDs 3802 / 3807), JSON `TEXT` on SQLite.
    #[derive(
        diesel::sql_types::SqlType, diesel::query_builder::QueryId, Debug, Clone, Copy, Default,
    )]
    #[diesel(postgres_type(oid = 3802, array_oid = 3807))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct Json;
}

use sql_types::Ts;

/// The current time, truncated to microseconds (what both backends store).
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// An instant in UTC with microsecond precision, bound to [`sql_types::Ts`] columns.
///
/// Serializes (serde) as the wire format: ISO 8601 with milliseconds and `Z`
/// (`2025-01-02T03:04:05.678Z`); deserializes from any RFC 3339 text.
#[derive(AsExpression, FromSqlRow, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[diesel(sql_type = Ts)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Timestamp(Utc::now().trunc_subsecs(6))
    }

    /// The instant as chrono's type.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// ISO 8601 with milliseconds and `Z`, as the API emits timestamps.
    pub fn to_iso_millis(&self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// Truncates to microseconds.
    fn from(value: DateTime<Utc>) -> Self {
        Timestamp(value.trunc_subsecs(6))
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl std::ops::Deref for Timestamp {
    type Target = DateTime<Utc>;
    fn deref(&self) -> &DateTime<Utc> {
        &self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso_millis())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_iso_millis())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp::from(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

impl<DB> ToSql<Ts, DB> for Timestamp
where
    DB: diesel::backend::Backend,
    DateTime<Utc>: ToSql<Ts, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        <DateTime<Utc> as ToSql<Ts, DB>>::to_sql(&self.0, out)
    }
}

impl<DB> FromSql<Ts, DB> for Timestamp
where
    DB: diesel::backend::Backend,
    DateTime<Utc>: FromSql<Ts, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        // Values written by other tools may carry more precision; keep the invariant.
        <DateTime<Utc> as FromSql<Ts, DB>>::from_sql(bytes).map(Timestamp::from)
    }
}

/// A JSON document bound to [`sql_types::Json`] columns: `Json<serde_json::Value>` for free-form
/// data, or `Json<MyType>` for any serde type.
#[derive(AsExpression, FromSqlRow, Debug, Clone, PartialEq, Default)]
#[diesel(sql_type = sql_types::Json)]
pub struct Json<T = serde_json::Value>(pub T);

impl<T: Serialize + fmt::Debug> ToSql<sql_types::Json, Pg> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb binary input is a version byte (1) followed by the JSON text.
        out.write_all(&[1])?;
        serde_json::to_writer(out, &self.0)?;
        Ok(IsNull::No)
    }
}

impl<T: DeserializeOwned> FromSql<sql_types::Json, Pg> for Json<T> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let bytes = value.as_bytes();
        // Binary jsonb starts with its version byte; plain json text does not.
        let text = match bytes.split_first() {
            Some((1, rest)) => rest,
            _ => bytes,
        };
        Ok(Json(serde_json::from_slice(text)?))
    }
}

impl<T: Serialize + fmt::Debug> ToSql<sql_types::Json, Sqlite> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl<T: DeserializeOwned> FromSql<sql_types::Json, Sqlite> for Json<T> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(Json(serde_json::from_str(&text)?))
    }
}

/// Seconds between the Unix epoch and PostgreSQL's epoch (2000-01-01T00:00:00Z).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800 * 1_000_000;

/// The SQLite text form; `%.6f` always prints six digits, so the width is fixed for years 0000–9999.
const SQLITE_TS_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Formats an instant the way SQLite columns of type [`Ts`] store it.
pub fn format_sqlite_ts(value: &DateTime<Utc>) -> String {
    value.format(SQLITE_TS_FORMAT).to_string()
}

impl ToSql<Ts, Pg> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // Binary timestamptz is microseconds since 2000-01-01 UTC; `timestamp_micros` floors the
        // sub-microsecond part, which is the truncation we promise.
        let micros = self
            .timestamp_micros()
            .checked_sub(PG_EPOCH_OFFSET_MICROS)
            .ok_or("timestamp out of range for PostgreSQL")?;
        out.write_all(&micros.to_be_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Ts, Pg> for DateTime<Utc> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(value)
    }
}

impl ToSql<Ts, Sqlite> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(format_sqlite_ts(&self.trunc_subsecs(6)));
        Ok(IsNull::No)
    }
}

impl FromSql<Ts, Sqlite> for DateTime<Utc> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        // Accept any RFC 3339 offset so rows written by other tools (or imports) still load.
        let parsed = DateTime::parse_from_rfc3339(&text)
            .map_err(|e| format!("invalid timestamp text {text:?}: {e}"))?;
        Ok(parsed.with_timezone(&Utc))
    }
}

impl ToSql<sql_types::Json, Pg> for serde_json::Value {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // jsonb binary input is a version byte (1) followed by the JSON text.
        out.write_all(&[1])?;
        serde_json::to_writer(out, self)?;
        Ok(IsNull::No)
    }
}

impl FromSql<sql_types::Json, Pg> for serde_json::Value {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <serde_json::Value as FromSql<diesel::sql_types::Jsonb, Pg>>::from_sql(value)
    }
}

impl ToSql<sql_types::Json, Sqlite> for serde_json::Value {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(self)?);
        Ok(IsNull::No)
    }
}

impl FromSql<sql_types::Json, Sqlite> for serde_json::Value {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(serde_json::from_str(&text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sqlite_text_is_fixed_width_and_sorts_like_time() {
        let a = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single();
        let b = a.map(|t| t + chrono::Duration::microseconds(7));
        let (Some(a), Some(b)) = (a, b) else {
            panic!("valid dates")
        };
        let (ta, tb) = (format_sqlite_ts(&a), format_sqlite_ts(&b));
        assert_eq!(ta, "2025-01-02T03:04:05.000000Z");
        assert_eq!(tb, "2025-01-02T03:04:05.000007Z");
        assert_eq!(ta.len(), tb.len());
        assert!(ta < tb);
    }
}
