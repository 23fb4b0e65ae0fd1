//! Contract scope: a contract and the devices linked to it (only a contract in force has any).
//! Subject `contract:<id>`.

use serde_json::json;

use super::{flag, FlagKind, Scope};
use crate::import::model::Contract;
use crate::store::{Covered, FlagInstance};

/// Every contract-scope condition that holds for `c`, whose linked devices are `devices`.
pub fn contract_flags(c: &Contract, devices: &Covered, out: &mut Vec<FlagInstance>) {
    over_quantity(c, devices, out);
}

/// `over_contracted_quantity`: more devices linked than the contract pays for. No quantity =
/// not stated.
fn over_quantity(c: &Contract, devices: &Covered, out: &mut Vec<FlagInstance>) {
    let Some(q) = c.quantity else { return };
    if devices.count <= u64::from(q) {
        return;
    }
    out.push(flag(
        FlagKind::OverContractedQuantity,
        Scope::Contract.subject(&c.id),
        String::new(),
        format!(
            "contract {} ({}) covers {q} devices; {} are linked to it",
            c.id,
            c.supplier,
            devices.count
        ),
        json!({"contract_id": c.id, "supplier": c.supplier, "quantity": q, "linked": devices.count, "device_ids": devices.first}),
    ));
}

#[cfg(test)]
pub(super) fn cases() -> Vec<super::testkit::Case> {
    use super::testkit::*;
    let two_scanners = |q: Option<u32>| {
        World::covered_with(move |w| {
            w.inv
                .devices
                .push(dev(2).typed("ct").made("ACME", "Scan 2"));
            w.c().quantity = q;
        })
    };
    vec![
        Case::new(
            "two devices on a contract for one",
            FlagKind::OverContractedQuantity,
            two_scanners(Some(1)),
            two_scanners(Some(2)),
        ),
        Case::new(
            "no quantity stated",
            FlagKind::OverContractedQuantity,
            two_scanners(Some(1)),
            two_scanners(None),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    /// Only devices the contract covers today count: a lapsed contract has none.
    #[test]
    fn only_covered_devices_count() {
        let w = World::covered_with(|w| {
            w.inv
                .devices
                .push(dev(2).typed("ct").made("ACME", "Scan 2"));
            w.c().quantity = Some(1);
        });
        let f = w.of(FlagKind::OverContractedQuantity);
        assert_eq!(f[0].subject, "contract:C-1");
        assert_eq!(f[0].evidence["linked"], 2);
        assert_eq!(f[0].evidence["device_ids"], json!([1, 2]));
        let mut w = w;
        w.c().end = Some(days(-1));
        assert!(w.of(FlagKind::OverContractedQuantity).is_empty());
    }
}
