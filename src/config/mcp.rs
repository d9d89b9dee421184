//! `[mcp]`: the one MCP server flux talks to (OPERATOR §1, §6), its legacy switches and its checks.

use std::collections::BTreeMap;
use std::collections::HashMap;

use config::builder::DefaultState;
use config::ConfigBuilder;
use serde::Deserialize;

use super::ConfigError;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSettings {
    /// Program of a stdio server; "" = no stdio server.
    pub command: String,
    #[serde(deserialize_with = "list_or_commas")]
    pub args: Vec<String>,
    /// The child's whole environment besides PATH. A BTreeMap so logs and tests see a stable order.
    pub env: BTreeMap<String, String>,
    /// Endpoint of a streamable-HTTP server; "" = none.
    pub url: String,
    pub bearer_token: String,
    /// A file whose trimmed contents are the bearer token (Docker/Kubernetes secrets); "" = none.
    pub bearer_token_file: String,
    pub name: String,
    pub query_tool: String,
    /// Tools that may be listed and called; empty = every tool the server offers.
    #[serde(deserialize_with = "list_or_commas")]
    pub allowed_tools: Vec<String>,
    pub timeout_ms: u64,
    pub cache_ttl_secs: u64,
}

// Hand-written so the token and the child's environment (which often holds a database URL) never
// reach a log through `{:?}`.
impl std::fmt::Debug for McpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |set: bool| if set { "<redacted>" } else { "" };
        f.debug_struct("McpSettings")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("url", &self.url)
            .field("bearer_token", &redacted(!self.bearer_token.is_empty()))
            .field("bearer_token_file", &self.bearer_token_file)
            .field("name", &self.name)
            .field("query_tool", &self.query_tool)
            .field("allowed_tools", &self.allowed_tools)
            .field("timeout_ms", &self.timeout_ms)
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .finish()
    }
}

/// A TOML list, or (from `FLUX__MCP__…`) one comma-separated string.
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
        // The environment source parses `8080` or `true` before we see it.
        Int(i64),
        Bool(bool),
    }
    Ok(match ListOrText::deserialize(d)? {
        ListOrText::List(list) => list,
        ListOrText::Int(n) => vec![n.to_string()],
        ListOrText::Bool(b) => vec![b.to_string()],
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// How flux reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    Stdio,
    Http,
}

impl McpSettings {
    /// `None` when MCP is off: neither a command nor a URL.
    pub fn transport(&self) -> Option<McpTransport> {
        if !self.command.is_empty() {
            Some(McpTransport::Stdio)
        } else if !self.url.is_empty() {
            Some(McpTransport::Http)
        } else {
            None
        }
    }

    /// Whether `tool` may be listed and called.
    pub fn allows(&self, tool: &str) -> bool {
        self.allowed_tools.is_empty() || self.allowed_tools.iter().any(|t| t == tool)
    }

    /// Read the token file, then check the section.
    pub(super) fn resolve(&mut self, production: bool) -> Result<(), ConfigError> {
        if !self.bearer_token_file.is_empty() {
            let path = &self.bearer_token_file;
            let token = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!("mcp.bearer_token_file: cannot read {path}: {e}"))
            })?;
            self.bearer_token = token.trim().to_string();
        }
        if !self.command.is_empty() && !self.url.is_empty() {
            return Err(ConfigError::Invalid(
                "mcp: set either command (stdio) or url (streamable HTTP), not both".into(),
            ));
        }
        if !self.url.is_empty() {
            let http = self.url.starts_with("http://");
            if !(http || self.url.starts_with("https://")) {
                return Err(ConfigError::key("mcp.url", "an http(s):// URL", &self.url));
            }
            // A bearer token in clear text is only acceptable on this machine.
            if http && production && !is_loopback_url(&self.url) {
                return Err(ConfigError::key(
                    "mcp.url",
                    "https:// in production (http:// only to a loopback address)",
                    &self.url,
                ));
            }
        }
        if self.name.trim().is_empty() {
            return Err(ConfigError::key("mcp.name", "a non-empty name", &self.name));
        }
        if self.query_tool.trim().is_empty() {
            return Err(ConfigError::key(
                "mcp.query_tool",
                "a tool name",
                &self.query_tool,
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::key("mcp.timeout_ms", "at least 1", "0"));
        }
        Ok(())
    }
}

pub(super) fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The original's switches: `MCP_AUTO_CONNECT=false` turns MCP off, `MCP_ENABLE_CACHING=false` turns
/// the result cache off.
pub(super) fn legacy_env(
    mut builder: ConfigBuilder<DefaultState>,
    env: &HashMap<String, String>,
) -> Result<ConfigBuilder<DefaultState>, ConfigError> {
    let off = |name: &str| {
        env.get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
    };
    if off("MCP_AUTO_CONNECT") {
        builder = super::set(builder, "mcp.command", "")?;
        builder = super::set(builder, "mcp.url", "")?;
    }
    if off("MCP_ENABLE_CACHING") {
        builder = super::set(builder, "mcp.cache_ttl_secs", 0i64)?;
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::*;
    use std::path::PathBuf;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn temp_file(contents: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("flux-mcp-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("flux.toml");
        std::fs::write(&file, contents).unwrap();
        (dir, file)
    }

    #[test]
    fn off_by_default() {
        let s = Settings::load_from(None, &env(&[])).unwrap();
        let m = &s.mcp;
        assert_eq!(m.transport(), None);
        assert_eq!(m.name, "default");
        assert_eq!(m.query_tool, "query");
        assert!(m.allowed_tools.is_empty() && m.allows("anything"));
        assert_eq!(m.timeout_ms, 30_000);
        assert_eq!(m.cache_ttl_secs, 300);
    }

    #[test]
    fn stdio_from_a_file_keeps_env_names_as_written() {
        let (dir, file) = temp_file(
            "[mcp]\ncommand = \"npx\"\nargs = [\"-y\", \"server\"]\n\
             env = { DATABASE_URL = \"postgres://ro@db/flux\", Mixed_Case = \"1\" }\n\
             allowed_tools = [\"query\"]\n",
        );
        let s = Settings::load_from(Some(&file), &env(&[])).unwrap();
        assert_eq!(s.mcp.transport(), Some(McpTransport::Stdio));
        assert_eq!(s.mcp.args, ["-y", "server"]);
        assert_eq!(
            s.mcp.env.get("DATABASE_URL").map(String::as_str),
            Some("postgres://ro@db/flux")
        );
        assert!(s.mcp.env.contains_key("Mixed_Case"));
        assert!(s.mcp.allows("query") && !s.mcp.allows("other"));
        let debug = format!("{:?}", s.mcp);
        assert!(!debug.contains("postgres://ro"), "{debug}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lists_from_flux_env() {
        let s = Settings::load_from(
            None,
            &env(&[
                ("FLUX__MCP__COMMAND", "node"),
                ("FLUX__MCP__ARGS", "server.mjs,--read-only"),
                ("FLUX__MCP__ALLOWED_TOOLS", "query,describe"),
            ]),
        )
        .unwrap();
        assert_eq!(s.mcp.args, ["server.mjs", "--read-only"]);
        assert_eq!(s.mcp.allowed_tools, ["query", "describe"]);
        let s = Settings::load_from(None, &env(&[("FLUX__MCP__ARGS", "8080")])).unwrap();
        assert_eq!(s.mcp.args, ["8080"]);
    }

    #[test]
    fn legacy_switches() {
        let on = [("FLUX__MCP__COMMAND", "node")];
        let s = Settings::load_from(None, &env(&on)).unwrap();
        assert_eq!(s.mcp.transport(), Some(McpTransport::Stdio));

        let s = Settings::load_from(None, &env(&[on[0], ("MCP_AUTO_CONNECT", "false")])).unwrap();
        assert_eq!(s.mcp.transport(), None);
        let s = Settings::load_from(None, &env(&[on[0], ("MCP_AUTO_CONNECT", "true")])).unwrap();
        assert_eq!(s.mcp.transport(), Some(McpTransport::Stdio));

        let s = Settings::load_from(None, &env(&[("MCP_ENABLE_CACHING", "false")])).unwrap();
        assert_eq!(s.mcp.cache_ttl_secs, 0);
    }

    #[test]
    fn http_with_a_token_file() {
        let (dir, _) = temp_file("");
        let token = dir.join("token");
        std::fs::write(&token, " s3cr3t-token \n").unwrap();
        let s = Settings::load_from(
            None,
            &env(&[
                ("FLUX__MCP__URL", "https://mcp.example/mcp"),
                ("FLUX__MCP__BEARER_TOKEN_FILE", token.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(s.mcp.transport(), Some(McpTransport::Http));
        assert_eq!(s.mcp.bearer_token, "s3cr3t-token");
        assert!(!format!("{:?}", s.mcp).contains("s3cr3t"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_are_refused() {
        let refused = |pairs: &[(&str, &str)], needle: &str| {
            let err = Settings::load_from(None, &env(pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err}");
        };
        refused(
            &[
                ("FLUX__MCP__COMMAND", "node"),
                ("FLUX__MCP__URL", "http://127.0.0.1:9/mcp"),
            ],
            "not both",
        );
        refused(&[("FLUX__MCP__URL", "ftp://x")], "mcp.url");
        refused(&[("FLUX__MCP__TIMEOUT_MS", "0")], "mcp.timeout_ms");
        refused(
            &[("FLUX__MCP__BEARER_TOKEN_FILE", "/nonexistent/t")],
            "cannot read",
        );
        let production = [
            ("NODE_ENV", "production"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        refused(
            &[
                production[0],
                production[1],
                ("FLUX__MCP__URL", "http://mcp.internal/mcp"),
            ],
            "https:// in production",
        );
        Settings::load_from(
            None,
            &env(&[
                production[0],
                production[1],
                ("FLUX__MCP__URL", "http://127.0.0.1:8931/mcp"),
            ]),
        )
        .unwrap();
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:80/mcp"));
        assert!(is_loopback_url("http://localhost/mcp"));
        assert!(is_loopback_url("http://[::1]:3000/"));
        assert!(!is_loopback_url("http://mcp.example/mcp"));
        assert!(!is_loopback_url("http://127.0.0.1.example/"));
    }
}
