//! The house rules of `src/`, checked on every test run (ARCHITECTURE §2, issue 11).
//!
//! The module graph is built from the source itself: every file reachable from `src/lib.rs` (and
//! `src/main.rs`, the binary) through its `mod` declarations is parsed with `syn`, and every path
//! that names a module of this crate is collected: `use` trees (grouped and nested lists too),
//! paths in code and types, and paths inside macro invocations (`crate::db!`, `json!` bodies, …),
//! written as `crate::`, `self::`, `super::` (resolved against the file's module) or `flux::` (the
//! binary). Items under `#[cfg(test)]` are left out: tests may reach anywhere.
//!
//! The graph's nodes are the top-level modules; it must have no cycle, and the layers below must
//! hold. Every top-level module must be classified: a new module fails this test until someone
//! decides where it belongs (extend the rules, never loosen them).
//!
//! It also keeps every file of `src/` at most 700 lines.
//!
//! `cargo test --test architecture -- --nocapture` prints the graph; `FLUX_ARCHITECTURE_SRC=<dir>`
//! points it at another `src/`.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Where each top-level module sits. A module may use its own layer's modules (subject to the
/// named rules below) and the layers beneath it, never those above.
///
/// - foundation: settings, storage, the error type, input checks, logging, the healthcheck probe.
///   No HTTP, no domain.
/// - web: HTTP pieces that know no domain (CORS, CSRF, rate limits, request ids, the Socket.IO
///   bridge).
/// - infrastructure: `cluster` (the Redis link, the Socket.IO adapter, shared limits). It implements
///   web's `LimitStore`, so it sits above web; it knows no domain module.
/// - domain: what the product does. `import` (the Node data import), `membership` (who may use a
///   team, project or conversation), `mcp` (the MCP client), `security` (the security-event recorder
///   and the blocked addresses), `admin` (the operator API) and `integrations` (OAuth providers) are
///   domain modules too.
/// - assembly: targets and what starts them (`topology`, `server`, `health`, `features`), the CLI
///   and the binary. Domain modules never know targets or listeners.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &["config", "db", "error", "input", "telemetry", "healthcheck"],
    ),
    ("web", &["web"]),
    ("infrastructure", &["cluster"]),
    (
        "domain",
        &[
            "membership",
            "auth",
            "accounts",
            "messaging",
            "collab",
            "monitor",
            "import",
            "mcp",
            "security",
            "admin",
            "integrations",
        ],
    ),
    (
        "assembly",
        &["topology", "features", "health", "server", "cli", "main"],
    ),
];

/// Directions forbidden even where the layers would allow them.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "auth",
        "messaging",
        "auth is what messaging builds on, not the reverse",
    ),
    (
        "collab",
        "messaging",
        "collaboration and messaging never import each other",
    ),
    (
        "messaging",
        "collab",
        "collaboration and messaging never import each other",
    ),
    (
        "topology",
        "cli",
        "the CLI only parses; targets are topology's",
    ),
    (
        "db",
        "error",
        "storage knows nothing of the API (error.rs maps DbError, not the reverse)",
    ),
    (
        "mcp",
        "db",
        "MCP never reads the database (no SQL fallback); only its admin check asks auth",
    ),
    (
        "mcp",
        "accounts",
        "MCP depends on auth for the caller and on nothing else of the domain",
    ),
    (
        "mcp",
        "messaging",
        "MCP depends on auth for the caller and on nothing else of the domain",
    ),
    (
        "security",
        "auth",
        "the recorder and the block list never ask who is calling",
    ),
    (
        "security",
        "accounts",
        "the recorder and the block list know no other domain",
    ),
    (
        "security",
        "admin",
        "the admin API reads security, not the reverse",
    ),
    (
        "auth",
        "security",
        "auth records through web's SecuritySink, never the recorder itself",
    ),
    (
        "mcp",
        "security",
        "MCP records through web's SecuritySink, never the recorder itself",
    ),
    (
        "integrations",
        "security",
        "integrations record through web's SecuritySink, never the recorder itself",
    ),
    (
        "monitor",
        "admin",
        "the admin API reads the monitor, not the reverse",
    ),
    (
        "integrations",
        "accounts",
        "integrations know the caller through auth and projects through membership only",
    ),
    (
        "integrations",
        "messaging",
        "integrations know the caller through auth and projects through membership only",
    ),
    (
        "integrations",
        "collab",
        "integrations know the caller through auth and projects through membership only",
    ),
    (
        "integrations",
        "mcp",
        "integrations know the caller through auth and projects through membership only",
    ),
    (
        "auth",
        "integrations",
        "nothing of the domain depends on the integrations (they hold provider tokens)",
    ),
    (
        "accounts",
        "integrations",
        "nothing of the domain depends on the integrations (they hold provider tokens)",
    ),
    (
        "messaging",
        "integrations",
        "nothing of the domain depends on the integrations (they hold provider tokens)",
    ),
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&module))
}

/// Every rule the graph breaks, in words.
fn violations(graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for module in graph.keys() {
        if layer_of(module).is_none() {
            out.push(format!(
                "`{module}` is not classified: add it to LAYERS in tests/architecture.rs"
            ));
        }
    }
    for (from, tos) in graph {
        for to in tos {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) {
                if b > a {
                    out.push(format!(
                        "{from} → {to}: the {} layer may not use the {} layer",
                        LAYERS[a].0, LAYERS[b].0
                    ));
                }
            }
            for (f, t, why) in FORBIDDEN {
                if from == f && to == t {
                    out.push(format!("{from} → {to}: {why}"));
                }
            }
        }
    }
    for cycle in cycles(graph) {
        out.push(format!("cycle among {}", cycle.join(", ")));
    }
    out
}

/// The strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            for w in graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                let self_loop = graph.get(v).is_some_and(|tos| tos.contains(v));
                if component.len() > 1 || self_loop {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    let nodes: BTreeSet<&str> = graph
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.iter().map(String::as_str)))
        .collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found
}

// ---------------------------------------------------------------------------------------------
// Reading the source
// ---------------------------------------------------------------------------------------------

/// A path that names something of this crate, made absolute: `["db", "schema", "users"]`.
type AbsPath = Vec<String>;

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Collects the crate paths of one file. `module` is the file's module path (`["messaging",
/// "store"]`); `crate_names` are the words that mean this crate (`crate`, and `flux` in the binary).
struct Collector<'a> {
    module: Vec<String>,
    crate_names: &'a [&'a str],
    found: Vec<AbsPath>,
    /// `mod name;` declarations of this file that are not test-only.
    children: Vec<String>,
}

impl Collector<'_> {
    /// Resolves a path given as segments; `None` when it does not start with crate/self/super.
    fn resolve(&self, segments: &[String]) -> Option<AbsPath> {
        let first = segments.first()?;
        if self.crate_names.contains(&first.as_str()) || first == "$crate" {
            return Some(segments[1..].to_vec());
        }
        if first != "self" && first != "super" {
            return None;
        }
        let mut base = self.module.clone();
        let mut rest = segments;
        if first == "self" {
            rest = &rest[1..];
        }
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn record(&mut self, segments: &[String]) {
        if let Some(path) = self.resolve(segments) {
            if !path.is_empty() {
                self.found.push(path);
            }
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                if name == "self" {
                    self.record(prefix);
                } else {
                    prefix.push(name);
                    self.record(prefix);
                    prefix.pop();
                }
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.record(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.record(prefix),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// Paths inside a macro's tokens: `crate :: a :: b`, `super :: x`, `$crate :: y`.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(id) => {
                    let mut segments = vec![id.to_string()];
                    // `$crate` arrives as `$` then `crate`.
                    if i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '$')
                    {
                        segments[0] = format!("${}", segments[0]);
                    }
                    let mut j = i + 1;
                    let is_colon = |t: Option<&TokenTree>| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':');
                    while is_colon(tokens.get(j)) && is_colon(tokens.get(j + 1)) {
                        let Some(TokenTree::Ident(next)) = tokens.get(j + 2) else {
                            break;
                        };
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.record(&segments);
                    }
                    i = j;
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::ExternCrate(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::ForeignMod(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::TraitAlias(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Union(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            _ => &[],
        };
        if is_cfg_test(attrs) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let name = m.ident.to_string();
        match &m.content {
            None => self.children.push(name),
            Some((_, items)) => {
                self.module.push(name);
                for item in items {
                    self.visit_item(item);
                }
                self.module.pop();
            }
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(&segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.tokens(mac.tokens.clone());
    }
}

/// The file of child module `name` of a module whose file is `parent`.
fn child_file(parent: &Path, name: &str) -> PathBuf {
    let owns_dir = matches!(
        parent.file_name().and_then(|f| f.to_str()),
        Some("mod.rs" | "lib.rs" | "main.rs")
    );
    let dir = if owns_dir {
        parent.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        parent.with_extension("")
    };
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        flat
    } else {
        dir.join(name).join("mod.rs")
    }
}

/// The crate paths named by `file` (module `module`) and every non-test module below it, as
/// (top-level module of the user, absolute path used).
fn scan(file: &Path, module: Vec<String>, crate_names: &[&str], out: &mut Vec<(String, AbsPath)>) {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let parsed =
        syn::parse_file(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", file.display()));
    let mut c = Collector {
        module: module.clone(),
        crate_names,
        found: Vec::new(),
        children: Vec::new(),
    };
    for item in &parsed.items {
        c.visit_item(item);
    }
    let owner = module.first().cloned().unwrap_or_default();
    for path in c.found {
        out.push((owner.clone(), path));
    }
    for child in c.children {
        let mut m = module.clone();
        m.push(child.clone());
        scan(&child_file(file, &child), m, crate_names, out);
    }
}

/// The graph of top-level modules, from the crate's source.
fn source_graph() -> (Graph, BTreeSet<String>) {
    // `FLUX_ARCHITECTURE_SRC=<dir>` checks another tree (e.g. an older checkout) with this build.
    let src = std::env::var_os("FLUX_ARCHITECTURE_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut uses = Vec::new();
    scan(&src.join("lib.rs"), Vec::new(), &["crate"], &mut uses);
    let mut modules: BTreeSet<String> = uses
        .iter()
        .map(|(owner, _)| owner.clone())
        .filter(|o| !o.is_empty())
        .collect();
    // Top-level modules are what lib.rs declares, whether or not they use anything.
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let lib = syn::parse_file(&lib).expect("src/lib.rs parses");
    for item in &lib.items {
        if let syn::Item::Mod(m) = item {
            modules.insert(m.ident.to_string());
        }
    }
    let mut main_uses = Vec::new();
    scan(
        &src.join("main.rs"),
        Vec::new(),
        &["crate", "flux"],
        &mut main_uses,
    );
    uses.extend(
        main_uses
            .into_iter()
            .map(|(_, path)| ("main".to_owned(), path)),
    );
    modules.insert("main".to_owned());

    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (owner, path) in uses {
        let Some(target) = path.first() else { continue };
        if owner.is_empty() || *target == owner || !modules.contains(target) {
            continue;
        }
        graph.entry(owner).or_default().insert(target.clone());
    }
    (graph, modules)
}

fn arrows(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(from, tos)| {
            let tos: Vec<&str> = tos.iter().map(String::as_str).collect();
            format!(
                "{from} → {}",
                if tos.is_empty() {
                    "∅".to_owned()
                } else {
                    tos.join(", ")
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_module_graph_keeps_the_house_rules() {
    let (graph, modules) = source_graph();
    // The scan must see the crate, or every rule would hold vacuously.
    for expected in ["db", "web", "auth", "messaging", "server", "topology"] {
        assert!(
            modules.contains(expected),
            "{expected} not found: {modules:?}"
        );
    }
    assert!(
        graph["server"].contains("messaging") && graph["messaging"].contains("db"),
        "the scan found too few uses:\n{}",
        arrows(&graph)
    );
    println!("{}", arrows(&graph));
    let broken = violations(&graph);
    assert!(
        broken.is_empty(),
        "the module graph breaks the house rules:\n  - {}\n\ngraph:\n{}",
        broken.join("\n  - "),
        arrows(&graph)
    );
}

/// Longest source file: past this, a file holds more than one subject and should be split by them.
const MAX_FILE_LINES: usize = 700;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_700_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "too few files found under {}",
        src.display()
    );
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_FILE_LINES} lines: {long:?}");
}

// ---------------------------------------------------------------------------------------------
// The checker checks: it finds what it must find.
// ---------------------------------------------------------------------------------------------

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut g = Graph::new();
    for (a, b) in edges {
        g.entry((*a).to_owned())
            .or_default()
            .insert((*b).to_owned());
        g.entry((*b).to_owned()).or_default();
    }
    g
}

#[test]
fn a_cycle_in_a_synthetic_graph_is_found() {
    let g = graph_of(&[
        ("auth", "db"),
        ("accounts", "messaging"),
        ("messaging", "monitor"),
        ("monitor", "accounts"),
    ]);
    assert_eq!(cycles(&g), vec![vec!["accounts", "messaging", "monitor"]]);
    assert!(violations(&g)
        .iter()
        .any(|v| v.starts_with("cycle among accounts, messaging, monitor")));
    let acyclic = graph_of(&[("server", "auth"), ("auth", "db"), ("server", "db")]);
    assert!(cycles(&acyclic).is_empty());
    assert!(
        violations(&acyclic).is_empty(),
        "{:?}",
        violations(&acyclic)
    );
}

#[test]
fn forbidden_directions_and_unclassified_modules_are_found() {
    let broken = violations(&graph_of(&[
        ("db", "auth"),
        ("web", "cluster"),
        ("messaging", "topology"),
        ("auth", "messaging"),
        ("collab", "messaging"),
        ("topology", "cli"),
        ("tasks", "db"),
    ]));
    for expected in [
        "db → auth",
        "web → cluster",
        "messaging → topology",
        "auth → messaging",
        "collab → messaging",
        "topology → cli",
        "`tasks` is not classified",
    ] {
        assert!(
            broken.iter().any(|b| b.starts_with(expected)),
            "{expected} not reported: {broken:?}"
        );
    }
}

fn collect(module: &[&str], source: &str) -> Vec<String> {
    let parsed = syn::parse_file(source).expect("parses");
    let mut c = Collector {
        module: module.iter().map(|s| (*s).to_owned()).collect(),
        crate_names: &["crate"],
        found: Vec::new(),
        children: Vec::new(),
    };
    for item in &parsed.items {
        c.visit_item(item);
    }
    let mut tops: Vec<String> = c
        .found
        .into_iter()
        .filter_map(|p| p.first().cloned())
        .collect();
    tops.sort();
    tops.dedup();
    tops
}

#[test]
fn grouped_nested_relative_and_macro_paths_are_read() {
    let found = collect(
        &["messaging", "store"],
        r#"
        use crate::{auth::{token::TokenKeys, AuthUser}, db::{self, Db}};
        use super::super::monitor;
        use self::inner::Thing;
        fn f() {
            let _ = crate::membership::exists;
            crate::cluster::add_namespace!(x);
            tracing::info!("{}", crate::web::request::client_ip(req, 0));
            let s = "crate::config::Settings is only text";
        }
        // crate::health is only a comment
        #[cfg(test)]
        mod tests {
            use crate::server::Shared;
        }
        #[cfg(test)]
        fn helper() { crate::topology::listeners(); }
        "#,
    );
    assert_eq!(
        found,
        [
            "auth",
            "cluster",
            "db",
            "membership",
            "messaging",
            "monitor",
            "web"
        ]
    );
}
