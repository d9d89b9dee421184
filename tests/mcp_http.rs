//! MCP over streamable HTTP: flux against rmcp's own server side, hosted on hyper in the test, behind
//! a bearer-token check.
#![cfg(feature = "mcp")]
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth_support;
mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use auth_support::{server, state, Api, PASSWORD};
use bytes::Bytes;
use common::Backend;
use http_body_util::{BodyExt, Full};
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer};
use serde_json::{json, Value};

const TOKEN: &str = "test-bearer-token";

#[derive(Clone)]
struct Echo;

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = json!({"type": "object", "properties": {"query": {"type": "string"}}});
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "query",
            "Echo over HTTP",
            Arc::new(schema),
        )]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let echo = json!({"tool": request.name, "arguments": request.arguments});
        Ok(CallToolResult::success(vec![ContentBlock::text(echo.to_string())]).into())
    }
}

/// Serves MCP on 127.0.0.1:<ephemeral>/mcp; returns the URL and a count of refused requests.
async fn mcp_http_server() -> (String, Arc<AtomicUsize>) {
    let mcp = StreamableHttpService::new(
        || Ok(Echo),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let refused = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = refused.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mcp = mcp.clone();
            let refused = counter.clone();
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let mut mcp = mcp.clone();
                    let refused = refused.clone();
                    async move {
                        let authorized = req
                            .headers()
                            .get(http::header::AUTHORIZATION)
                            .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
                        if !authorized {
                            refused.fetch_add(1, Ordering::Relaxed);
                            let mut res = http::Response::new(
                                Full::new(Bytes::from_static(b"unauthorized")).boxed(),
                            );
                            *res.status_mut() = http::StatusCode::UNAUTHORIZED;
                            return Ok::<_, Infallible>(res);
                        }
                        tower_service_call(&mut mcp, req).await
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/mcp"), refused)
}

async fn tower_service_call(
    mcp: &mut StreamableHttpService<Echo, LocalSessionManager>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>, Infallible> {
    use tower::Service;
    mcp.call(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_with_a_bearer_token() {
    let (url, refused) = mcp_http_server().await;
    let t = server(Backend::Sqlite, |s| {
        s.mcp.url = url.clone();
        s.mcp.bearer_token = TOKEN.into();
        s.mcp.timeout_ms = 5000;
    })
    .await;
    let api = Api::new(&t).await;
    let settings = state(&t).settings.as_ref().clone();
    flux::auth::admin::create_admin(&settings, "root@example.com", None, PASSWORD)
        .await
        .unwrap();
    let admin = api.login("root@example.com", PASSWORD).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = api.get("/mcp/tools", Some(&admin)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body["tools"]["default"],
        json!([{"name": "query", "description": "Echo over HTTP",
                "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}}}])
    );
    let res = api
        .post("/mcp/query", json!({"query": "over http"}), Some(&admin))
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let echo: Value =
        serde_json::from_str(res.body["results"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(echo["tool"], "query");
    assert_eq!(echo["arguments"]["query"], "over http");
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "every request carried the token"
    );
    t.stop().await;

    // A wrong token: the server refuses, flux answers 503.
    let t = server(Backend::Sqlite, |s| {
        s.mcp.url = url.clone();
        s.mcp.bearer_token = "wrong".into();
        s.mcp.timeout_ms = 5000;
    })
    .await;
    let api = Api::new(&t).await;
    let user = api.signup("u@example.com", "U").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = api.get("/mcp/tools", Some(&user)).await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert_eq!(res.body["code"], "MCP_UNAVAILABLE");
    assert!(refused.load(Ordering::Relaxed) > 0);
    t.stop().await;
}
