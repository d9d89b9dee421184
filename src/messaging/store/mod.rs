//! Messaging queries, by subject. Every function takes the [`Db`](crate::db::Db) and works unchanged
//! on SQLite and PostgreSQL. Who may use a conversation is not decided here but in
//! [`crate::membership`].

pub mod conversations;
pub mod messages;
pub mod notifications;
pub mod reactions;
pub mod reads;
pub mod search;
