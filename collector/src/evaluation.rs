//! Running evaluations against the store: links, flags and summaries for part of the inventory
//! at a time.
//!
//! Why in parts: a device's conditions depend only on the device, its links, the contracts and
//! the advisories (the device scopes of [`flags`]); only an asset's and a contract's depend on
//! other devices, and those the store answers from its links ([`Store::linked_elsewhere`]).
//! So the evaluator's lease holder evaluates just the devices whose data changed
//! ([`evaluate_changed`]: within a second of their data, whatever the inventory's size), and a
//! whole evaluation is a sweep over every device [`PART_DEVICES`] at a time
//! ([`evaluate_all`]): its memory is one part's, not the inventory's, and new data is evaluated
//! between two parts rather than after the sweep.
//!
//! What the parts read besides the devices (contracts, assets, advisories, the KEV catalog,
//! SBOMs, OpenEoX statements) is read once into a [`Reference`] and read again only when an
//! import changed it; an evaluation of changed devices that finds an import changed returns
//! `None`, and the caller sweeps, since an import can change any device's conditions.

use std::collections::BTreeSet;

use crate::compliance::flags::{self, At, FlagConfig};
use crate::compliance::{link, summary};
use crate::store::{Applied, ChangesSeen, EvalScope, Evaluated, Inventory, Store, StoreError};

/// Devices an evaluation of part of the inventory reads at most: bounds its memory (a few
/// kilobytes a device) and how long new data waits behind one part of a sweep.
pub const PART_DEVICES: usize = 5000;

/// How long [`evaluate_changed`] goes on taking parts of changed devices (it takes one at
/// least), so that a flood of changes (a replay) never keeps the evaluator from renewing its
/// lease (a third of `evaluator_lease_secs`, 10 s by default) or sending alerts: a part of
/// 5 000 changed devices takes about 2 s at a million devices on PostgreSQL.
const CHANGED_BUDGET: std::time::Duration = std::time::Duration::from_secs(4);

/// What [`evaluate_changed`] did.
#[derive(Debug, Default)]
pub struct Changed {
    /// Its counts.
    pub applied: Applied,
    /// Changed devices are left: it stopped at its time budget.
    pub more: bool,
}

/// What every evaluation reads besides the devices, kept between evaluations while the imports
/// do not change ([`Store::imports_version`]).
#[derive(Debug, Default)]
pub struct Reference {
    /// Assets, contracts, advisories, KEV, SBOMs, OpenEoX; `devices` holds the part being
    /// evaluated, and is empty between evaluations.
    inv: Inventory,
    version: Option<Vec<i64>>,
}

impl Reference {
    /// Reads the imports again if they changed since they were read (or were never read);
    /// whether they did.
    pub fn refresh(&mut self, store: &dyn Store) -> Result<bool, StoreError> {
        let version = store.imports_version()?;
        if self.version.as_ref() == Some(&version) {
            return Ok(false);
        }
        self.inv = Inventory {
            devices: Vec::new(),
            assets: store.inventory_assets()?,
            contracts: store.inventory_contracts()?,
            advisories: store.advisories()?,
            kev: store.kev()?,
            sboms: store.sboms()?,
            eox: store.eox_statements()?,
        };
        // Read before the data: an import in between is seen again next time.
        self.version = Some(version);
        Ok(true)
    }
}

/// Adds what one evaluation did to what the others did: its counts. The flags it opened and
/// resolved are not kept (a first sweep of a million devices opens a million): alerts are
/// taken from the store ([`Store::take_alerts`]), which marks them in the same transaction.
fn add(total: &mut Applied, a: Applied) {
    let (t, s) = (&mut total.stats, a.stats);
    t.links_changed += s.links_changed;
    t.links_removed += s.links_removed;
    t.flags_opened += s.flags_opened;
    t.flags_resolved += s.flags_resolved;
    t.flags_open = s.flags_open;
}

/// Evaluates the devices `ids` — their links, conditions and summaries, and the conditions of
/// the assets and contracts their links name, before or after — and stores it all in one
/// transaction with `changes` forgotten. An id that is no longer a device (merged away) loses
/// its links, flags and summary.
fn evaluate_part(
    store: &mut dyn Store,
    reference: &mut Reference,
    ids: &[i64],
    changes: ChangesSeen<'_>,
    cfg: &FlagConfig,
    now_us: i64,
) -> Result<Applied, StoreError> {
    let at = At::new(now_us);
    let before = store.links_of(ids)?;
    reference.inv.devices = store.devices_by_id(ids)?;
    let inv = &reference.inv;
    let links = link::link(inv, at.today);
    let mut pass = flags::device_pass(inv, &links, cfg, at);
    let mut assets = BTreeSet::new();
    let mut contracts = BTreeSet::new();
    for l in before.iter().chain(&links) {
        match l.kind {
            crate::store::LinkKind::Asset => assets.insert(l.target.clone()),
            crate::store::LinkKind::Contract => contracts.insert(l.target.clone()),
        };
    }
    let assets: Vec<String> = assets.into_iter().collect();
    let contracts: Vec<String> = contracts.into_iter().collect();
    // Only a contract with a quantity counts its devices (a contract may cover a million).
    let counted: Vec<String> = inv
        .contracts
        .iter()
        .filter(|c| c.quantity.is_some() && contracts.binary_search(&c.id).is_ok())
        .map(|c| c.id.clone())
        .collect();
    let mut others = store.linked_elsewhere(ids, &assets, &counted)?;
    for (tag, seen) in std::mem::take(&mut pass.asset_last_seen) {
        let e = others.asset_last_seen.entry(tag).or_insert(seen);
        *e = (*e).max(seen);
    }
    for (id, devs) in std::mem::take(&mut pass.contract_devices) {
        others
            .contract_devices
            .entry(id)
            .or_default()
            .add(devs.count, devs.first);
    }
    flags::aggregate_flags(
        inv.assets
            .iter()
            .filter(|a| assets.binary_search(&a.tag).is_ok()),
        &others.asset_last_seen,
        inv.contracts
            .iter()
            .filter(|c| contracts.binary_search(&c.id).is_ok()),
        &others.contract_devices,
        cfg,
        at,
        &mut pass.flags,
    );
    let summaries = summary::summaries(inv, &links, &pass.flags, cfg);
    let applied = store.apply_evaluated(&Evaluated {
        scope: EvalScope::Part {
            devices: ids,
            assets: &assets,
            contracts: &contracts,
            every_aggregate: false,
        },
        links: &links,
        flags: &pass.flags,
        notes: &pass.notes,
        summaries: Some(&summaries),
        changes,
        now_us,
    });
    reference.inv.devices = Vec::new();
    applied
}

/// Evaluates the devices whose data changed since they were last evaluated, a part at a time,
/// until none is left or [`CHANGED_BUDGET`] is spent; `Ok(None)` when an import changed since
/// the last evaluation: then every device needs one ([`evaluate_all`]).
pub fn evaluate_changed(
    store: &mut dyn Store,
    reference: &mut Reference,
    cfg: &FlagConfig,
    now_us: i64,
) -> Result<Option<Changed>, StoreError> {
    if reference.refresh(store)? {
        return Ok(None);
    }
    let t = std::time::Instant::now();
    let mut out = Changed::default();
    loop {
        let changed = store.changed_devices(PART_DEVICES)?;
        if changed.devices.is_empty() {
            break;
        }
        let seen = ChangesSeen::These {
            devices: &changed.devices,
            up_to: changed.up_to,
        };
        let a = evaluate_part(store, reference, &changed.devices, seen, cfg, now_us)?;
        add(&mut out.applied, a);
        if changed.devices.len() < PART_DEVICES {
            break;
        }
        if t.elapsed() >= CHANGED_BUDGET {
            out.more = true;
            break;
        }
    }
    Ok(Some(out))
}

/// Evaluates everything: every device, [`PART_DEVICES`] at a time in id order (calling
/// `between` after each part: the serve loop evaluates new data, sends alerts and renews its
/// lease there; `false` stops the sweep), then every asset and contract — an asset no device
/// is linked to, a contract none is covered by — and whatever asset or contract flag names
/// one no longer imported. Changes recorded before it started are forgotten at its end: it saw
/// them. `clock` gives each part its time (µs), never earlier than the previous part's.
pub fn evaluate_all(
    store: &mut dyn Store,
    reference: &mut Reference,
    cfg: &FlagConfig,
    clock: &dyn Fn() -> i64,
    between: &mut dyn FnMut(&mut dyn Store, &mut Reference) -> Result<bool, StoreError>,
) -> Result<Applied, StoreError> {
    let t = std::time::Instant::now();
    reference.refresh(store)?;
    let up_to = store.last_change()?;
    let mut total = Applied::default();
    let (mut after, mut devices, mut now_us) = (i64::MIN, 0usize, clock());
    loop {
        let ids = store.device_ids_after(after, PART_DEVICES)?;
        let Some(&last) = ids.last() else { break };
        after = last;
        devices += ids.len();
        now_us = now_us.max(clock());
        let a = evaluate_part(store, reference, &ids, ChangesSeen::None, cfg, now_us)?;
        add(&mut total, a);
        if !between(store, reference)? {
            return Ok(total);
        }
    }
    now_us = now_us.max(clock());
    let inv = &reference.inv;
    let tags: Vec<String> = inv.assets.iter().map(|a| a.tag.clone()).collect();
    let ids: Vec<String> = inv.contracts.iter().map(|c| c.id.clone()).collect();
    let counted: Vec<String> = inv
        .contracts
        .iter()
        .filter(|c| c.quantity.is_some())
        .map(|c| c.id.clone())
        .collect();
    let linked = store.linked_elsewhere(&[], &tags, &counted)?;
    let mut found = Vec::new();
    flags::aggregate_flags(
        &inv.assets,
        &linked.asset_last_seen,
        &inv.contracts,
        &linked.contract_devices,
        cfg,
        At::new(now_us),
        &mut found,
    );
    let a = store.apply_evaluated(&Evaluated {
        scope: EvalScope::Part {
            devices: &[],
            assets: &tags,
            contracts: &ids,
            every_aggregate: true,
        },
        links: &[],
        flags: &found,
        notes: &[],
        summaries: None,
        changes: ChangesSeen::UpTo(up_to),
        now_us,
    })?;
    add(&mut total, a);
    tracing::debug!(
        devices,
        flags_open = total.stats.flags_open,
        opened = total.stats.flags_opened,
        resolved = total.stats.flags_resolved,
        elapsed_ms = t.elapsed().as_millis() as u64,
        "evaluated"
    );
    Ok(total)
}

/// Evaluates everything at `now_us` ([`evaluate_all`] with nothing between the parts): what
/// imports, the CLI and the API's evaluate call run.
pub fn evaluate(
    store: &mut dyn Store,
    cfg: &FlagConfig,
    now_us: i64,
) -> Result<Applied, StoreError> {
    evaluate_all(
        store,
        &mut Reference::default(),
        cfg,
        &|| now_us,
        &mut |_, _| Ok(true),
    )
}
