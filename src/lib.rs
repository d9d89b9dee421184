//! flux: the FluxStudio backend in one binary. See README.md and ARCHITECTURE in `../shared`.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod cli;
pub mod cluster;
#[cfg(feature = "collab")]
pub mod collab;
pub mod config;
pub mod db;
pub mod error;
pub mod features;
pub mod health;
pub mod healthcheck;
pub mod import;
pub mod input;
pub mod integrations;
pub mod mcp;
pub mod membership;
pub mod messaging;
pub mod monitor;
pub mod security;
pub mod server;
pub mod telemetry;
pub mod topology;
pub mod web;
