//! What the one-shot commands do (`ingest`, `contracts import`, `assets import`,
//! `advisories import`, `kev import`, `sbom import`, `eox import`, `evaluate`, `token create`), so the binary only parses
//! arguments and dispatches, and the demo runs the same sequence as the commands.
//!
//! Every command that changes what the evaluation reads goes through [`import_and_evaluate`]:
//! store what was brought, then link and re-evaluate every flag as of the same time, then log.
//! Flags therefore never lag behind an import, and alerts for what an import opened or resolved
//! are picked up by a running `serve` from the database (see `alerts/`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::access::tokens::{self, Role};
use crate::compliance::flags::FlagConfig;
use crate::config::Config;
use crate::import::advisories::{self, Advisory};
use crate::import::assets::{self, ColumnMap};
use crate::import::contracts;
use crate::import::eox::{self, EoxStatement};
use crate::import::kev::{self, KevCatalog};
use crate::import::model::Contract;
use crate::import::sbom::{self, Sbom};
use crate::ingest;
use crate::store::{
    AdvisoryImportStats, Applied, EoxImportStats, ImportStats, IngestStats, SbomImportStats, Store,
};

/// Opens the configured database.
pub fn open(cfg: &Config) -> anyhow::Result<Box<dyn Store>> {
    open_db(&cfg.db)
}

/// Opens the store `db` names (a SQLite path or a `postgres://` URL); errors name it without
/// its password.
pub fn open_db(db: &std::path::Path) -> anyhow::Result<Box<dyn Store>> {
    let db = db.to_string_lossy();
    crate::store::open_store(&db)
        .with_context(|| format!("database {}", crate::store::display_db(&db)))
}

/// Something brought into the store before an evaluation. Contracts and assets are read and
/// checked in full when the value is made (an error anywhere imports nothing; `--dry-run`
/// stops there); agent messages are checked line by line as they are stored.
#[derive(Debug)]
pub enum Import {
    /// Agent JSON-lines files (`ward-agent read --output jsonl:FILE`), stored `batch` messages
    /// per transaction.
    Observations {
        /// The files, in order.
        files: Vec<PathBuf>,
        /// Messages per transaction.
        batch: usize,
    },
    /// Contracts (MC2 terms), inserted or replaced by id.
    Contracts {
        /// Where they came from.
        file: PathBuf,
        /// What it holds.
        contracts: Vec<Contract>,
    },
    /// A CMMS export, inserted or replaced by asset tag.
    Assets {
        /// Where it came from.
        file: PathBuf,
        /// What it holds.
        import: assets::Import,
        /// The file is the whole register: assets not in it are removed.
        replace: bool,
    },
    /// CSAF 2.0 security advisories, revisions ordered by `tracking.version`.
    Advisories {
        /// The files and directories given.
        paths: Vec<PathBuf>,
        /// What they hold, one advisory per file.
        advisories: Vec<Advisory>,
    },
    /// The CISA KEV catalog, replacing the stored one.
    Kev {
        /// Where it came from.
        file: PathBuf,
        /// What it holds.
        catalog: KevCatalog,
    },
    /// A CycloneDX SBOM of a product release, bound to a contract; replaces the stored BOM of
    /// the same serial number unless it is older.
    Sbom {
        /// Where it came from.
        file: PathBuf,
        /// What it holds.
        sbom: Box<Sbom>,
    },
    /// OpenEoX end-of-life statements, revisions ordered by `last_updated`.
    Eox {
        /// The files and directories given.
        paths: Vec<PathBuf>,
        /// What they hold.
        statements: Vec<EoxStatement>,
    },
}

impl Import {
    /// Agent JSON-lines files; `batch` is at least 1.
    pub fn observations(files: Vec<PathBuf>, batch: usize) -> Import {
        Import::Observations {
            files,
            batch: batch.max(1),
        }
    }

    /// Reads and checks a contract file.
    pub fn contracts(file: PathBuf) -> anyhow::Result<Import> {
        let contracts = contracts::load(&file)?;
        Ok(Import::Contracts { file, contracts })
    }

    /// Reads and checks a CMMS export; `map` holds `--map FIELD=HEADER` arguments.
    pub fn assets(file: PathBuf, map: &[String], replace: bool) -> anyhow::Result<Import> {
        let import = assets::load(&file, &ColumnMap::with_overrides(map)?)?;
        if !import.ignored_columns.is_empty() {
            // Said before anything is stored, so a dry run shows it too.
            tracing::info!(file = %file.display(), columns = ?import.ignored_columns, "columns not mapped (ignored)");
        }
        Ok(Import::Assets {
            file,
            import,
            replace,
        })
    }

    /// Reads and checks CSAF advisory files and directories (their `*.json`), all of them
    /// before anything is stored.
    pub fn advisories(paths: Vec<PathBuf>) -> anyhow::Result<Import> {
        let advisories = advisories::load(&paths)?;
        Ok(Import::Advisories { paths, advisories })
    }

    /// Reads and checks a KEV catalog.
    pub fn kev(file: PathBuf) -> anyhow::Result<Import> {
        let catalog = kev::load(&file)?;
        Ok(Import::Kev { file, catalog })
    }

    /// Reads and checks a CycloneDX SBOM, bound to a contract and a product (the flags
    /// override the document's `metadata.component`).
    pub fn sbom(file: PathBuf, binding: &sbom::Binding) -> anyhow::Result<Import> {
        let sbom = Box::new(sbom::load(&file, binding)?);
        Ok(Import::Sbom { file, sbom })
    }

    /// Reads and checks OpenEoX files (core documents are bound to the product `binding`
    /// names), all of them before anything is stored.
    pub fn eox(paths: Vec<PathBuf>, binding: &eox::Binding) -> anyhow::Result<Import> {
        let statements = eox::load(&paths, binding)?;
        Ok(Import::Eox { paths, statements })
    }

    /// Stores what was read, without evaluating ([`import_and_evaluate`] evaluates after).
    pub fn store(&self, store: &mut dyn Store, now_us: i64) -> anyhow::Result<Imported> {
        Ok(match self {
            Import::Observations { files, batch } => {
                let t = std::time::Instant::now();
                let (st, bad_lines) = ingest::replay_files(store, files, *batch)?;
                let secs = t.elapsed().as_secs_f64();
                tracing::info!(
                    messages = st.messages,
                    duplicates = st.duplicates,
                    device_records = st.device_records,
                    devices_created = st.devices_created,
                    merges = st.merges,
                    statuses = st.statuses,
                    bad_lines,
                    seconds = secs,
                    records_per_sec = (st.device_records as f64 / secs.max(1e-9)) as u64,
                    "replay done"
                );
                Imported::Observations {
                    ingest: st,
                    bad_lines,
                }
            }
            Import::Contracts { file, contracts } => {
                let source = file.display().to_string();
                let st = store.import_contracts(contracts, &source, now_us)?;
                tracing::info!(file = %source, inserted = st.inserted, replaced = st.replaced, "contracts imported");
                Imported::Contracts { import: st }
            }
            Import::Assets {
                file,
                import,
                replace,
            } => {
                let source = file.display().to_string();
                let st = store.import_assets(&import.assets, *replace, &source, now_us)?;
                tracing::info!(file = %source, inserted = st.inserted, replaced = st.replaced, removed = st.removed, "assets imported");
                Imported::Assets {
                    import: st,
                    ignored_columns: import.ignored_columns.clone(),
                }
            }
            Import::Advisories { advisories, .. } => {
                let st = store.import_advisories(advisories, now_us)?;
                if !st.refused.is_empty() {
                    let lines: Vec<String> = st.refused.iter().map(|r| r.to_string()).collect();
                    anyhow::bail!("nothing imported:\n{}", lines.join("\n"));
                }
                tracing::info!(
                    inserted = st.inserted,
                    replaced = st.replaced,
                    unchanged = st.unchanged,
                    "advisories imported"
                );
                Imported::Advisories { advisories: st }
            }
            Import::Kev { file, catalog } => {
                let source = file.display().to_string();
                let st = store.import_kev(catalog, &source, now_us)?;
                tracing::info!(file = %source, catalog_version = %catalog.catalog_version, inserted = st.inserted, replaced = st.replaced, removed = st.removed, "KEV catalog imported");
                Imported::Kev { kev: st }
            }
            Import::Sbom { file, sbom } => {
                let st = store.import_sbom(sbom, now_us)?;
                if let Some(why) = &st.refused {
                    anyhow::bail!("nothing imported: {why}");
                }
                tracing::info!(file = %file.display(), key = %sbom.key(), contract = %sbom.contract_id, model = %sbom.product_model, components = st.components, "SBOM imported");
                Imported::Sbom { sbom: st }
            }
            Import::Eox { statements, .. } => {
                let st = store.import_eox(statements, now_us)?;
                if !st.refused.is_empty() {
                    anyhow::bail!("nothing imported:\n{}", st.refused.join("\n"));
                }
                tracing::info!(
                    inserted = st.inserted,
                    replaced = st.replaced,
                    unchanged = st.unchanged,
                    "OpenEoX statements imported"
                );
                Imported::Eox { eox: st }
            }
        })
    }
}

/// The file and what it holds, e.g. `contracts.yaml: 3 contracts`.
impl fmt::Display for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Import::Observations { files, .. } => write!(f, "{} agent message files", files.len()),
            Import::Contracts { file, contracts } => {
                write!(f, "{}: {} contracts", file.display(), contracts.len())
            }
            Import::Assets { file, import, .. } => {
                write!(f, "{}: {} assets", file.display(), import.assets.len())
            }
            Import::Advisories { advisories, .. } => {
                let ids: Vec<&str> = advisories.iter().map(|a| a.id.as_str()).collect();
                write!(f, "{} advisories ({})", advisories.len(), ids.join(", "))
            }
            Import::Kev { file, catalog } => write!(
                f,
                "{}: KEV catalog {} with {} vulnerabilities",
                file.display(),
                catalog.catalog_version,
                catalog.entries.len()
            ),
            Import::Sbom { file, sbom } => write!(
                f,
                "{}: SBOM of {} {} for contract {} with {} components",
                file.display(),
                sbom.product_model,
                sbom.product_version.as_deref().unwrap_or("(any version)"),
                sbom.contract_id,
                sbom.components.len()
            ),
            Import::Eox { statements, .. } => {
                let keys: Vec<String> = statements.iter().map(EoxStatement::key).collect();
                write!(
                    f,
                    "{} OpenEoX statements ({})",
                    statements.len(),
                    keys.join(", ")
                )
            }
        }
    }
}

/// What one [`Import`] stored; as JSON, the fields the CLI has always printed for it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Imported {
    /// Agent messages.
    Observations {
        /// What the store did with them (rejections and adjustments by reason included).
        ingest: IngestStats,
        /// Lines refused.
        bad_lines: u64,
    },
    /// Contracts.
    Contracts {
        /// Inserted and replaced.
        import: ImportStats,
    },
    /// Assets.
    Assets {
        /// Inserted, replaced and removed.
        import: ImportStats,
        /// Headers that fed nothing.
        ignored_columns: Vec<String>,
    },
    /// Advisories.
    Advisories {
        /// Inserted, replaced, unchanged.
        advisories: AdvisoryImportStats,
    },
    /// The KEV catalog.
    Kev {
        /// Inserted, replaced and removed entries.
        kev: ImportStats,
    },
    /// An SBOM.
    Sbom {
        /// Inserted or replaced, and its components.
        sbom: SbomImportStats,
    },
    /// OpenEoX statements.
    Eox {
        /// Inserted, replaced, unchanged.
        eox: EoxImportStats,
    },
}

/// What [`import_and_evaluate`] did.
#[derive(Debug)]
pub struct Outcome {
    /// One entry per import, in order.
    pub imported: Vec<Imported>,
    /// The evaluation that followed.
    pub evaluation: Applied,
}

impl Outcome {
    /// One JSON object: each import's fields, then `evaluation` (a command imports one thing,
    /// so no field is written twice).
    pub fn json(&self) -> serde_json::Result<Value> {
        let mut obj = serde_json::Map::new();
        for i in &self.imported {
            if let Value::Object(fields) = serde_json::to_value(i)? {
                obj.extend(fields);
            }
        }
        obj.insert("evaluation".into(), serde_json::to_value(&self.evaluation)?);
        Ok(Value::Object(obj))
    }
}

/// Import → link → evaluate → log: stores each of `imports` (contracts and assets as of
/// `now_us`), then links every device and reconciles every flag as of `now_us`. With no
/// imports it is the `evaluate` command.
pub fn import_and_evaluate(
    store: &mut dyn Store,
    imports: &[Import],
    flags: &FlagConfig,
    now_us: i64,
) -> anyhow::Result<Outcome> {
    let imported = imports
        .iter()
        .map(|i| i.store(store, now_us))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let evaluation = ingest::evaluate(store, flags, now_us).context("evaluating flags")?;
    let st = &evaluation.stats;
    tracing::info!(
        flags_open = st.flags_open,
        opened = st.flags_opened,
        resolved = st.flags_resolved,
        "flags evaluated"
    );
    Ok(Outcome {
        imported,
        evaluation,
    })
}

/// `--now`: RFC 3339, or `YYYY-MM-DD` (midnight UTC), as µs since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| "expected RFC 3339 or YYYY-MM-DD".to_owned())?;
    Ok(d.and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_micros())
}

/// Creates an API token valid for `lifetime` (none: no expiry), logs it without its secret and
/// returns the token text, which cannot be shown again.
pub fn create_token(
    store: &mut dyn Store,
    name: &str,
    role: Role,
    vendors: &[String],
    lifetime: Option<Duration>,
    now_us: i64,
) -> anyhow::Result<String> {
    let expires = lifetime.map(|d| {
        let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        now_us.saturating_add(us)
    });
    let (rec, token) = tokens::create(store, name, role, vendors, expires, now_us)?;
    tracing::info!(id = %rec.id, name = %rec.name, role = %rec.role, "token created");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_takes_rfc3339_or_a_date() {
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn an_import_is_stored_then_evaluated_and_printed_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            db: dir.path().join("ward.db"),
            ..Config::default()
        };
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            "version: 1\ncontracts:\n  - id: C-1\n    supplier: Acme\n    products:\n      \
             - manufacturer: Acme*\n        model: X*\n    start: 2020-01-01\n    end: 2030-01-01\n",
        )
        .unwrap();
        let import = Import::contracts(file.clone()).unwrap();
        assert_eq!(
            import.to_string(),
            format!("{}: 1 contracts", file.display())
        );
        let mut store = open(&cfg).unwrap();
        let out = import_and_evaluate(&mut store, &[import], &cfg.flags, 1).unwrap();
        let json = out.json().unwrap();
        assert_eq!(json["import"]["inserted"], 1, "{json}");
        assert!(json["evaluation"]["flags_open"].is_u64(), "{json}");
        assert_eq!(store.inventory().unwrap().contracts.len(), 1);

        // Nothing to import: the evaluate command.
        let again = import_and_evaluate(&mut store, &[], &cfg.flags, 2).unwrap();
        assert!(again.imported.is_empty());
        assert_eq!(again.json().unwrap().as_object().unwrap().len(), 1);
    }
}
