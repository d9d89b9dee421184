//! Cargo features gate which targets a build can run (`auth`, `messaging`, `collab`, `redis`; all on
//! by default), so a slimmer binary refuses a target it cannot serve instead of serving half of it.
//! `collab` also gates its code and its dependencies (yrs, actix-ws) at compile time; the others
//! share their dependencies with the rest of the crate and gate targets only. `mcp` (on by default)
//! gates no target: without it the MCP client and its dependencies (rmcp, reqwest 0.13) are left out
//! and the `/mcp` routes answer 503 `MCP_NOT_CONFIGURED`.

use crate::topology::Target;

pub fn ensure(target: Target) -> anyhow::Result<()> {
    let needs: &[(&str, bool)] = match target {
        Target::Unified | Target::All => &[
            ("auth", cfg!(feature = "auth")),
            ("messaging", cfg!(feature = "messaging")),
        ],
        Target::Auth => &[("auth", cfg!(feature = "auth"))],
        Target::Messaging => &[("messaging", cfg!(feature = "messaging"))],
        Target::Collab => &[("collab", cfg!(feature = "collab"))],
    };
    let collab_too = target == Target::All && !cfg!(feature = "collab");
    for (name, enabled) in needs {
        if !enabled {
            anyhow::bail!(
                "this flux was built without the `{name}` feature, which `serve {target:?}` needs"
            );
        }
    }
    if collab_too {
        anyhow::bail!("this flux was built without the `collab` feature, which `serve all` needs");
    }
    Ok(())
}
