//! Command line: `flux serve <target>`, `flux migrate …`, `flux user create-admin`, `flux healthcheck`.
//! It only parses; what a target runs is [`crate::topology`]'s business.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::topology::Target;

#[derive(Debug, Parser)]
#[command(
    name = "flux",
    version,
    about = "FluxStudio backend: accounts, messaging and collaboration in one binary",
    long_about = "FluxStudio backend: accounts, messaging (REST + Socket.IO) and Yjs collaboration in one binary.\n\n\
With no configuration, `flux serve all` keeps its data in ./data/flux.db (SQLite) and listens on \
3001 (HTTP + Socket.IO) and 3003 (collaboration). Every setting and its default is documented in \
Settings.toml; environment variables FLUX__SECTION__KEY and the legacy names (PORT, DATABASE_URL, \
JWT_SECRET, …) override it.",
    propagate_version = true
)]
pub struct Cli {
    /// Settings file layered over the built-in defaults (TOML; only the keys you change).
    #[arg(long, global = true, value_name = "FILE", env = "FLUX_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a server target.
    Serve {
        #[arg(value_enum)]
        target: Target,
    },
    /// Schema and data operations (never implicit in production).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Account administration.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Exit 0 when the server's /health/ready answers 200 (for container health checks).
    Healthcheck {
        /// Readiness URL to probe; defaults to http://127.0.0.1:<PORT>/health/ready.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an admin account (public signup never creates admins). The password is read from
    /// stdin when it is not a terminal, otherwise prompted for without echo.
    CreateAdmin {
        /// E-mail address of the new admin.
        #[arg(long)]
        email: String,
        /// Display name; defaults to the part of the e-mail before `@`.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Run,
    /// List migrations, applied or pending.
    Status,
    /// Revert the most recent migrations.
    Revert {
        /// How many migrations to revert.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// Import the original Node services' JSON data files into the database.
    #[command(
        long_about = "Import the original Node services' JSON data files into the database \
(the one DATABASE_URL / settings select).\n\n\
Reads users.json, teams.json, channels.json, projects.json, files.json and messages.json from DIR \
(each shaped {\"<name>\": [ ... ]}; a missing file is reported and skipped) and imports them in one \
transaction. Legacy ids are kept. Records whose id is already stored are left as they are, so running \
it again changes nothing. Problems in the data (duplicate e-mails, references to unknown users, teams \
or conversations, invalid values) are listed as anomalies and do not stop the import; unreadable \
files or malformed JSON do, before anything is written.\n\n\
Legacy passwords keep working: they are verified the old way and rehashed at each user's first login. \
File contents are not copied; move the legacy uploads into <data_dir>/uploads under the same names.\n\n\
The schema must be current: run `flux migrate run` first (a development SQLite database is migrated \
as `flux serve` would do)."
    )]
    ImportJson {
        /// Folder holding the legacy *.json files.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Do everything in a transaction that is rolled back: print the counts and anomalies, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_targets() {
        let cli = Cli::try_parse_from(["flux", "serve", "unified"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve {
                target: Target::Unified
            }
        ));
        assert!(Cli::try_parse_from(["flux", "serve", "nope"]).is_err());
        let cli =
            Cli::try_parse_from(["flux", "user", "create-admin", "--email", "a@b.co"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User {
                action: UserAction::CreateAdmin { ref email, name: None }
            } if email == "a@b.co"
        ));
        let cli = Cli::try_parse_from(["flux", "migrate", "revert", "--steps", "2"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Migrate {
                action: MigrateAction::Revert { steps: 2 }
            }
        ));
        let cli =
            Cli::try_parse_from(["flux", "migrate", "import-json", "old", "--dry-run"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Migrate {
                action: MigrateAction::ImportJson { ref dir, dry_run: true }
            } if dir == std::path::Path::new("old")
        ));
        assert!(Cli::try_parse_from(["flux", "migrate", "import-json"]).is_err());
    }
}
