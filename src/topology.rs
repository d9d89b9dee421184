//! Targets are bundles of modules (ARCHITECTURE §1): which modules a `flux serve <target>` runs, in
//! which order they start, which listeners it opens, and the live state `/services` reports.

use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

/// What `flux serve <target>` runs (the CLI parses it straight into this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Production: auth, accounts, messaging and metrics on PORT (3001), Socket.IO /messaging and /auth.
    Unified,
    /// Rollback split: the legacy auth service on PORT (3001).
    Auth,
    /// Rollback split: the legacy messaging service on MESSAGING_PORT (3002), Socket.IO on / and /messaging.
    Messaging,
    /// The Yjs collaboration service on COLLAB_PORT (3003).
    Collab,
    /// Development: unified on 3001 and collab on 3003 in one process.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    Database,
    Auth,
    Accounts,
    Messaging,
    Monitor,
    Collab,
}

impl Module {
    pub fn depends_on(self) -> &'static [Module] {
        match self {
            Module::Database => &[],
            Module::Auth | Module::Collab | Module::Monitor => &[Module::Database],
            Module::Accounts | Module::Messaging => &[Module::Database, Module::Auth],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ModuleState {
    Starting = 0,
    Ready = 1,
    Degraded = 2,
    Stopping = 3,
}

impl ModuleState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => ModuleState::Ready,
            2 => ModuleState::Degraded,
            3 => ModuleState::Stopping,
            _ => ModuleState::Starting,
        }
    }
}

/// The HTTP services of the legacy topology, each with the name its `/health` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    Unified,
    Auth,
    Messaging,
    Collab,
}

impl ListenerKind {
    pub fn service_name(self) -> &'static str {
        match self {
            ListenerKind::Unified => "unified-backend",
            ListenerKind::Auth => "auth-service",
            ListenerKind::Messaging => "messaging-service",
            ListenerKind::Collab => "collaboration-server",
        }
    }
}

pub fn listeners(target: Target) -> &'static [ListenerKind] {
    match target {
        Target::Unified => &[ListenerKind::Unified],
        Target::Auth => &[ListenerKind::Auth],
        Target::Messaging => &[ListenerKind::Messaging],
        Target::Collab => &[ListenerKind::Collab],
        Target::All => &[ListenerKind::Unified, ListenerKind::Collab],
    }
}

/// Modules of a target in start order (dependencies first); they stop in reverse.
pub fn modules(target: Target) -> &'static [Module] {
    use Module::*;
    match target {
        Target::Unified => &[Database, Auth, Accounts, Messaging, Monitor],
        Target::Auth => &[Database, Auth, Accounts, Monitor],
        Target::Messaging => &[Database, Auth, Messaging],
        Target::Collab => &[Database, Auth, Collab],
        Target::All => &[Database, Auth, Accounts, Messaging, Monitor, Collab],
    }
}

/// Live module states of the running target.
#[derive(Debug)]
pub struct Modules {
    entries: Vec<(Module, AtomicU8)>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleReport {
    pub name: Module,
    pub state: ModuleState,
    pub depends_on: &'static [Module],
}

impl Modules {
    pub fn for_target(target: Target) -> Self {
        Modules {
            entries: modules(target)
                .iter()
                .map(|m| (*m, AtomicU8::new(ModuleState::Starting as u8)))
                .collect(),
        }
    }

    pub fn set(&self, module: Module, state: ModuleState) {
        if let Some((_, s)) = self.entries.iter().find(|(m, _)| *m == module) {
            s.store(state as u8, Ordering::Release);
        }
    }

    pub fn set_all(&self, state: ModuleState) {
        for (_, s) in &self.entries {
            s.store(state as u8, Ordering::Release);
        }
    }

    pub fn state(&self, module: Module) -> Option<ModuleState> {
        self.entries
            .iter()
            .find(|(m, _)| *m == module)
            .map(|(_, s)| ModuleState::from_u8(s.load(Ordering::Acquire)))
    }

    pub fn all_ready(&self) -> bool {
        self.entries
            .iter()
            .all(|(_, s)| ModuleState::from_u8(s.load(Ordering::Acquire)) == ModuleState::Ready)
    }

    pub fn report(&self) -> Vec<ModuleReport> {
        self.entries
            .iter()
            .map(|(m, s)| ModuleReport {
                name: *m,
                state: ModuleState::from_u8(s.load(Ordering::Acquire)),
                depends_on: m.depends_on(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_start_first() {
        for target in [
            Target::Unified,
            Target::Auth,
            Target::Messaging,
            Target::Collab,
            Target::All,
        ] {
            let order = modules(target);
            for (i, m) in order.iter().enumerate() {
                for dep in m.depends_on() {
                    let at = order.iter().position(|x| x == dep);
                    assert!(
                        at.is_some_and(|at| at < i),
                        "{target:?}: {m:?} needs {dep:?} first"
                    );
                }
            }
        }
    }

    #[test]
    fn all_runs_unified_and_collab() {
        assert_eq!(
            listeners(Target::All),
            &[ListenerKind::Unified, ListenerKind::Collab]
        );
    }

    #[test]
    fn readiness_needs_every_module() {
        let m = Modules::for_target(Target::Collab);
        assert!(!m.all_ready());
        m.set_all(ModuleState::Ready);
        assert!(m.all_ready());
        m.set(Module::Database, ModuleState::Degraded);
        assert!(!m.all_ready());
        assert_eq!(m.state(Module::Database), Some(ModuleState::Degraded));
        assert_eq!(m.state(Module::Messaging), None);
    }
}
